package notify

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// A notify_command runs in a process group of its own, so that what it
// starts can be found and ended with it: killing only the direct child
// once left grandchildren running past the timeout and past the director.

// waitExited blocks until process pid has exited, without reaping it:
// while it is an unreaped zombie its process group id cannot be reused,
// so signalling the group afterwards reaches only what it started.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// killGroup kills every process of process group pgid and returns how
// many were alive (zombies do not count). The group's leader must not
// have been reaped yet (see waitExited).
func killGroup(pgid int) int {
	alive := groupMembers(pgid)
	if alive > 0 {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return alive
}

// groupMembers counts the live (not zombie) processes of group pgid, from
// /proc/PID/stat: "pid (comm) state ppid pgrp ...", comm being anything.
func groupMembers(pgid int) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	want := []byte(strconv.Itoa(pgid))
	n := 0
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := bytes.Fields(b[i+1:]) // state, ppid, pgrp, ...
		if len(f) >= 3 && f[0][0] != 'Z' && f[0][0] != 'X' && bytes.Equal(f[2], want) {
			n++
		}
	}
	return n
}
