package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ExecOptions are the options of exec checks: a program the director
// runs, whose exit status is the verdict (keepalived's MISC_CHECK).
type ExecOptions struct {
	// Command is the program's absolute path, then its arguments. It is
	// run directly, without a shell.
	Command []string
	// User, when set, is the user (name or number) the command runs as,
	// with that user's groups; the director must be root to switch.
	User string
	// DynamicWeight reads a weight from the command (keepalived's
	// misc_dynamic): the last "weight=N" line of its output, else for an
	// exit status of 2-255 the status minus 2 (0-253). Without it, any
	// exit status but 0 is down.
	DynamicWeight bool
}

// ExecConcurrency is how many exec checks may run at once in the whole
// director. A check that finds every slot taken waits for one within its
// timeout; one that gets none is inconclusive ("local: ..."): the
// director, not the server, is short of something.
const ExecConcurrency = 64

// execOutputCap is how much of each of a command's output streams is
// looked at (for weight= lines and the last line); the rest is read and
// dropped, so a chatty command never blocks on a full pipe.
const execOutputCap = 4 << 10

// execLineCap bounds one output line kept for parsing.
const execLineCap = 256

// execExitGrace is how long the output is read after the command exits
// and its process group has been killed: the pipe's last bytes.
const execExitGrace = 100 * time.Millisecond

// slots is a counting semaphore.
type slots chan struct{}

// take waits for a free slot until ctx ends.
func (s slots) take(ctx context.Context) bool {
	select {
	case s <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (s slots) give() { <-s }

var execKind = Kind{
	Name:      "exec",
	Foreign:   map[string]string{"misc_check": "keepalived's MISC_CHECK", "external": "ldirectord's checktype = external"},
	Keys:      []Key{{Name: "command"}, {Name: "user"}, {Name: "dynamic_weight"}},
	PerServer: true,
	Zero:      ExecOptions{},
	Decode:    decodeExec,
	build:     newExec,
}

func decodeExec(d Decoder) Options {
	var o ExecOptions
	if cmd, ok := d.Strings("command"); ok {
		o.Command = cmd
		// The program must be there and runnable now; that it stays so is
		// the operator's business (a run that cannot start it is
		// inconclusive).
		if len(cmd) > 0 && filepath.IsAbs(cmd[0]) {
			if msg := programProblem(cmd[0]); msg != "" {
				d.Errorf("command", "%s", msg)
			}
		}
	}
	if name, ok := d.String("user"); ok {
		o.User = name
		if name != "" {
			if _, err := lookupCredential(name); err != nil {
				d.Errorf("user", "%v", err)
			}
		}
	}
	o.DynamicWeight, _ = d.Bool("dynamic_weight")
	return o
}

// programProblem says why path cannot be run, "" when it can.
func programProblem(path string) string {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Sprintf("cannot run %s: %v", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("cannot run %s: not a regular file", path)
	case fi.Mode()&0o111 == 0:
		return fmt.Sprintf("cannot run %s: not executable (chmod +x it)", path)
	}
	return ""
}

// lookupCredential resolves a user name or number to its uid, gid and
// groups.
func lookupCredential(name string) (*syscall.Credential, error) {
	u, err := user.Lookup(name)
	if err != nil {
		var uerr error
		if u, uerr = user.LookupId(name); uerr != nil {
			return nil, fmt.Errorf("no user %q on this system", name)
		}
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user %q has a uid or gid that is not a number", name)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	return cred, nil
}

// Validate checks the command's shape.
func (o ExecOptions) Validate() []OptionError {
	switch {
	case len(o.Command) == 0:
		return []OptionError{{Key: "command", With: []string{"type"},
			Msg: `an exec check needs a command, such as ["/usr/local/bin/check-db", "--quick"]`}}
	case !filepath.IsAbs(o.Command[0]):
		return []OptionError{{Key: "command", Msg: fmt.Sprintf("%q must be an absolute path (no shell or PATH lookup is used)", o.Command[0])}}
	case strings.ContainsRune(strings.Join(o.Command, ""), 0):
		return []OptionError{{Key: "command", Msg: "must not contain NUL bytes"}}
	}
	return nil
}

// Canonical renders every option.
func (o ExecOptions) Canonical() string {
	var c canonical
	c.list("command", o.Command)
	c.str("user", o.User)
	c.boolean("dynamic_weight", o.DynamicWeight)
	return c.text()
}

// Describe is "exec /usr/local/bin/check-db for 10.0.0.11:5432".
func (o ExecOptions) Describe(s Spec) string {
	prog := ""
	if len(o.Command) > 0 {
		prog = o.Command[0]
	}
	return "exec " + prog + " for " + s.Target.String()
}

// execProber runs a command per check, in a process group of its own,
// with whom the check is for in its environment:
//
//	DIRECTOR_VIRTUAL_SERVER  the virtual server's name
//	DIRECTOR_REAL_SERVER     the real server, ip:port
//	DIRECTOR_ADDRESS         the address to check (the check's address, else the real server's)
//	DIRECTOR_PORT            the port to check
//	DIRECTOR_SOURCE          the check's source address, when set
//	DIRECTOR_TIMEOUT         the check's timeout in seconds, such as 2 or 0.5
//
// besides the director's own environment. Exit status 0 is up, anything
// else down (with DynamicWeight, 2-255 is up with a weight). At the
// deadline the whole process group is killed; so is whatever the command
// left running in it when it exits. A descendant that left the group
// (setsid, a daemon) is not followed, but its hold on the output pipe is
// cut.
type execProber struct {
	spec    *Spec
	argv    []string
	env     []string
	cred    *syscall.Credential // nil: run as the director's user
	dynamic bool
	slots   slots
}

func newExec(spec *Spec, shared *Shared) (Prober, error) {
	o := spec.Options.(ExecOptions)
	p := &execProber{spec: spec, argv: o.Command, dynamic: o.DynamicWeight, slots: shared.execSlots}
	if o.User != "" {
		var err error
		if p.cred, err = lookupCredential(o.User); err != nil {
			return nil, fmt.Errorf("%s: user: %v", spec, err)
		}
	}
	rs := spec.RealServer
	if !rs.IsValid() {
		rs = spec.Target // a spec not made by the config
	}
	p.env = append(os.Environ(),
		"DIRECTOR_VIRTUAL_SERVER="+spec.VirtualServer,
		"DIRECTOR_REAL_SERVER="+rs.String(),
		"DIRECTOR_ADDRESS="+spec.Target.Addr().String(),
		"DIRECTOR_PORT="+strconv.Itoa(int(spec.Target.Port())),
		"DIRECTOR_TIMEOUT="+strconv.FormatFloat(spec.Timeout.Seconds(), 'f', -1, 64),
	)
	if spec.Source.IsValid() {
		p.env = append(p.env, "DIRECTOR_SOURCE="+spec.Source.String())
	}
	return p, nil
}

// Probe runs the command once, within the deadline.
func (p *execProber) Probe(ctx context.Context) Result {
	var v execVerdict
	res := run(ctx, p.spec.Timeout, func(ctx context.Context) string {
		v = p.probe(ctx)
		return v.reason
	})
	if res.OK && v.weight >= 0 {
		res.HasWeight, res.Weight = true, uint32(v.weight)
	}
	return res
}

// execVerdict is one run's outcome: the failure reason ("" for up; one
// that starts "local: " makes the result inconclusive, see run) and the
// weight the command reported (-1 for none).
type execVerdict struct {
	reason string
	weight int64
}

func down(reason string) execVerdict  { return execVerdict{reason: reason, weight: -1} }
func local(reason string) execVerdict { return down(localPrefix + reason) }

func (p *execProber) probe(ctx context.Context) execVerdict {
	if !p.slots.take(ctx) {
		if ctx.Err() == context.Canceled {
			return down("canceled")
		}
		return local(fmt.Sprintf("all %d exec check slots busy until the deadline", cap(p.slots)))
	}
	defer p.slots.give()

	// The pipes are the command's own stdout and stderr: no goroutine of
	// os/exec copies them, so Wait returns when the command exits, not
	// when the last holder of a pipe lets go.
	stdout, err := startPipe()
	if err != nil {
		return local("exec: " + shortError(err))
	}
	defer stdout.close()
	stderr, err := startPipe()
	if err != nil {
		return local("exec: " + shortError(err))
	}
	defer stderr.close()

	cmd := exec.CommandContext(ctx, p.argv[0], p.argv[1:]...)
	cmd.Env = p.env
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = stdout.w, stderr.w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = execExitGrace // then os/exec kills the process itself, should the group be out of reach
	err = cmd.Start()
	stdout.w.Close()
	stderr.w.Close()
	if err != nil {
		if ctx.Err() != nil {
			return down(classify(ctx, ctx.Err()))
		}
		return local("exec: " + shortError(err))
	}
	stdout.read()
	stderr.read()
	waitErr := cmd.Wait()
	killed := ctx.Err() != nil
	// What the command left behind in its group goes with it, and
	// whoever left the group keeps no hold on the pipes.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	stdout.finish()
	stderr.finish()
	if killed {
		return down(classify(ctx, ctx.Err()))
	}
	return p.verdict(cmd.ProcessState, waitErr, stdout.out, stderr.out)
}

// verdict judges a command that ran to its end.
func (p *execProber) verdict(ps *os.ProcessState, waitErr error, stdout, stderr *execOutput) execVerdict {
	said := stderr.last // the command's own word on a failure
	if said == "" {
		said = stdout.last
	}
	fail := func(what string) execVerdict {
		if said != "" {
			what += ": " + said
		}
		return down(what)
	}
	if ps == nil {
		return down("error: " + shortError(waitErr))
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fail("killed by signal " + ws.Signal().String())
	}
	code := ps.ExitCode()
	switch {
	case code == 0 && !p.dynamic:
		return execVerdict{weight: -1}
	case code == 1 || !p.dynamic:
		return fail("exit status " + strconv.Itoa(code))
	case stdout.badWeight != "":
		return down(fmt.Sprintf("bad output %q: want weight=N with N 0-65535", stdout.badWeight))
	case stdout.weight >= 0:
		return execVerdict{weight: stdout.weight}
	case code >= 2:
		return execVerdict{weight: int64(code - 2)}
	}
	return execVerdict{weight: -1}
}

// outputPipe carries one of the command's output streams to an
// execOutput.
type outputPipe struct {
	r, w *os.File
	out  *execOutput
	done chan struct{}
}

func startPipe() (*outputPipe, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	return &outputPipe{r: r, w: w, out: &execOutput{weight: -1}, done: make(chan struct{})}, nil
}

// read reads the pipe to its end in a goroutine of its own.
func (p *outputPipe) read() {
	go func() {
		defer close(p.done)
		p.out.readFrom(p.r)
	}()
}

// finish waits a moment for the pipe's last bytes, then for the reader.
func (p *outputPipe) finish() {
	p.r.SetReadDeadline(time.Now().Add(execExitGrace))
	<-p.done
}

func (p *outputPipe) close() {
	p.r.Close()
	p.w.Close()
}

// execOutput is what a probe keeps of one of a command's output streams:
// its last non-empty line and its weight= lines.
type execOutput struct {
	line      []byte // the line being read, up to execLineCap
	long      bool   // the line being read is longer than that
	kept      int    // bytes looked at so far, up to execOutputCap
	last      string
	weight    int64  // the last weight=N, -1 for none
	badWeight string // a weight= line that did not parse
}

// readFrom reads r to its end (or error), looking at the first
// execOutputCap bytes and dropping the rest.
func (o *execOutput) readFrom(r *os.File) {
	buf := make([]byte, 1024)
	for {
		n, err := r.Read(buf)
		chunk := buf[:min(n, execOutputCap-o.kept)]
		o.kept += len(chunk)
		o.scan(chunk)
		if len(chunk) < n {
			o.long = true // the line at the cap is cut: not one to trust
		}
		if err != nil {
			break
		}
	}
	o.endLine()
}

func (o *execOutput) scan(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			o.add(b)
			return
		}
		o.add(b[:i])
		o.endLine()
		b = b[i+1:]
	}
}

func (o *execOutput) add(b []byte) {
	room := execLineCap - len(o.line)
	if len(b) > room {
		b, o.long = b[:room], true
	}
	o.line = append(o.line, b...)
}

func (o *execOutput) endLine() {
	line := strings.TrimSpace(string(o.line))
	long := o.long
	o.line, o.long = o.line[:0], false
	if line == "" {
		return
	}
	o.last = clip(line)
	if v, ok := strings.CutPrefix(line, "weight="); ok {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n > 65535 || long {
			o.badWeight = clip(line)
			return
		}
		o.weight = int64(n)
	}
}
