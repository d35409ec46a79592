package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// BackendsMain is the backends child process: it serves the groups' backends and
// answers line commands on in/out — "count" (connections accepted so
// far) and "kill K" (refuse K more backends from now; replies the instant
// in Unix nanoseconds) — until in closes.
func BackendsMain(groups []Group, first, port int, in io.Reader, out io.Writer) error {
	b, err := StartBackends(groups, first, port)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "count":
			fmt.Fprintln(out, b.Count())
		case "kill":
			k, _ := strconv.Atoi(arg)
			at, _ := b.Kill(k)
			fmt.Fprintln(out, at.UnixNano())
		default:
			fmt.Fprintln(out, "error: unknown command")
		}
	}
	return nil
}

// FloorMain is the reference-checker child process: it checks n backends
// until in closes, then prints its FloorStats as JSON.
func FloorMain(kind string, n, port int, interval, timeout time.Duration, in io.Reader, out io.Writer) error {
	targets := make([]netip.AddrPort, n)
	for i := range targets {
		targets[i] = backendAddr(i, port)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, in)
		cancel()
	}()
	fmt.Fprintln(out, "ready")
	stats := RunFloor(ctx, kind, targets, interval, timeout)
	return json.NewEncoder(out).Encode(stats)
}

// child is a helper process driven over its stdin and stdout.
type child struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	more []*child // further backends processes, finished with this one
}

func startChild(ctx context.Context, bin string, args ...string) (*child, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s %s: %w", bin, strings.Join(args, " "), err)
	}
	c := &child{cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	if line, err := c.out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		return nil, fmt.Errorf("%s %s did not start: %q %v", bin, args[0], line, err)
	}
	return c, nil
}

func (c *child) ask(cmd string) (string, error) {
	if _, err := fmt.Fprintln(c.in, cmd); err != nil {
		return "", err
	}
	line, err := c.out.ReadString('\n')
	return strings.TrimSpace(line), err
}

// finish closes the child's stdin (its signal to stop) and returns the
// rest of its output.
func (c *child) finish() (string, error) {
	for _, m := range c.more {
		m.finish()
	}
	c.in.Close()
	rest, _ := io.ReadAll(c.out)
	return string(rest), c.cmd.Wait()
}
