package bench

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// procCPU is the CPU time (user + system) a process has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// procPeakRSS is the process's peak resident set size in bytes (VmHWM).
func procPeakRSS(pid int) (int64, error) { return procStatusBytes(pid, "VmHWM:") }

// peakRSS is the peak resident set given the kernel's VmHWM and the
// resident sets seen before it was read. VmHWM is not a true running
// maximum: the kernel folds the current RSS into it only at some events
// (unmap, exit) and counts pages per thread in batches, so a VmRSS read
// earlier can exceed a VmHWM read later (CI saw 40,665,088 against
// 40,640,512). The peak is at least every resident set seen.
func peakRSS(hwm int64, seen ...int64) int64 {
	for _, rss := range seen {
		hwm = max(hwm, rss)
	}
	return hwm
}

// procRSS is the process's resident set size now, in bytes (VmRSS).
func procRSS(pid int) (int64, error) { return procStatusBytes(pid, "VmRSS:") }

// procStatusBytes reads a size field ("VmHWM:") of /proc/PID/status.
func procStatusBytes(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, strings.TrimSuffix(field, ":"))
}
