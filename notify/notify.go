// Package notify tells the outside world about real server state changes:
// it runs an operator's command (notify_command), POSTs a webhook
// (notify_url) and mails alerts ([notify.email], email.go) for each
// transition. Delivery never blocks the caller:
// events are queued and a worker per sink delivers them in order; a full
// queue drops the event and counts it.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Event is one transition, as sinks receive it: the JSON body of the
// webhook and the command's standard input.
type Event struct {
	Type          string    `json:"type"` // "transition", "panic", "panic_end", "vrrp", "director_health"
	Time          time.Time `json:"time"`
	Director      string    `json:"director"` // host name of the director
	VirtualServer string    `json:"virtual_server"`
	RealServer    string    `json:"real_server"`
	From          string    `json:"from"`
	To            string    `json:"to"`
	Reason        string    `json:"reason"`
	Check         string    `json:"check"`
	Recent        []Result  `json:"recent"` // the server's last check results, newest first
	// VRRPInstance is the keepalived instance of a "vrrp" event (its
	// state went From -> To); empty for other events.
	VRRPInstance string `json:"vrrp_instance,omitempty"`
}

// Result is one check result in Event.Recent.
type Result struct {
	Time            time.Time `json:"time"`
	OK              bool      `json:"ok"`
	Reason          string    `json:"reason,omitempty"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// Target is where a virtual server's events go. Zero values disable a sink.
type Target struct {
	Command []string // argv; run without a shell
	URL     string
}

// Recorder counts deliveries by sink ("command", "webhook", "email") and result
// ("success", "failure", "dropped"); *metrics.Metrics is one.
type Recorder interface {
	Notification(sink, result string)
}

// Options configure a Notifier.
type Options struct {
	// Targets returns the sinks for a virtual server. It is called from
	// Run's goroutine, never from Notify, so it may take locks that
	// Notify's caller holds (the engine's, to read the running config).
	Targets func(virtualServer string) Target
	// Timeout bounds one command run and one webhook attempt; 10s when zero.
	Timeout time.Duration
	// Attempts is how often a webhook is tried before giving up; 3 when zero.
	Attempts int
	// RetryDelay is the wait before the second attempt, doubling after; 1s when zero.
	RetryDelay time.Duration
	// QueueSize is how many events wait (before routing, and per sink)
	// before new ones are dropped; 256 when zero.
	QueueSize int
	Recorder  Recorder
	Logger    *slog.Logger
	// Client sends webhooks; a client without redirects when nil.
	Client *http.Client
	// Email returns the e-mail settings in force ([notify.email]); nil,
	// or a func returning nil, turns e-mail off. Called from the e-mail
	// worker, so a reload applies to the next mail.
	Email func() *EmailSettings
	// Killed, when set, is told how many processes of a notify_command's
	// group were killed, and when: "timeout", "shutdown", or "exited"
	// (left running by a command that ended).
	Killed func(when string, processes int)
}

type job struct {
	ev     Event
	target Target
}

// Notifier queues events and delivers them. Create it with New, start
// delivery with Run; Notify may be called before Run.
type Notifier struct {
	opts     Options
	events   chan Event // not yet routed to sinks
	commands chan job
	webhooks chan job
	emails   chan Event
	host     string

	// Drops are counted always but logged at most once a minute: a burst
	// of thousands of transitions must not become thousands of log lines.
	drops       atomic.Uint64
	lastDropLog atomic.Int64 // Unix nanoseconds
}

// dropLogEvery is how often dropped notifications are logged at most.
const dropLogEvery = time.Minute

// dropped counts one dropped event and logs, rate-limited, how many so far.
func (n *Notifier) dropped(sink, why string, ev Event) {
	n.opts.Recorder.Notification(sink, "dropped")
	total := n.drops.Add(1)
	now, last := time.Now().UnixNano(), n.lastDropLog.Load()
	if (last == 0 || now-last >= int64(dropLogEvery)) && n.lastDropLog.CompareAndSwap(last, now) {
		n.opts.Logger.Warn("notify: queue full, events dropped; "+why+" (logged at most once a minute; see director_notifications_total)",
			"sink", sink, "dropped_total", total, "virtual_server", ev.VirtualServer, "real_server", ev.RealServer, "to", ev.To)
	}
}

type nopRecorder struct{}

func (nopRecorder) Notification(string, string) {}

// New returns a Notifier.
func New(opts Options) *Notifier {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 256
	}
	if opts.Recorder == nil {
		opts.Recorder = nopRecorder{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Email == nil {
		opts.Email = func() *EmailSettings { return nil }
	}
	if opts.Targets == nil {
		opts.Targets = func(string) Target { return Target{} }
	}
	if opts.Client == nil {
		// A webhook that redirects is misconfigured; following it would
		// POST events somewhere the operator did not name.
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	host, _ := os.Hostname()
	return &Notifier{
		opts:     opts,
		events:   make(chan Event, opts.QueueSize),
		commands: make(chan job, opts.QueueSize),
		webhooks: make(chan job, opts.QueueSize),
		emails:   make(chan Event, opts.QueueSize),
		host:     host,
	}
}

// Notify queues ev. It never blocks and takes no lock: the engine calls it
// with its own lock held. When the queue is full the event is dropped and
// counted (sink "any").
func (n *Notifier) Notify(ev Event) {
	if ev.Type == "" {
		ev.Type = "transition"
	}
	if ev.Director == "" {
		ev.Director = n.host
	}
	select {
	case n.events <- ev:
	default:
		n.dropped("any", "notifications are slower than the transitions", ev)
	}
}

// route sends ev to every sink its virtual server has.
func (n *Notifier) route(ev Event) {
	t := n.opts.Targets(ev.VirtualServer)
	if len(t.Command) > 0 {
		n.enqueue(n.commands, "command", job{ev, t})
	}
	if t.URL != "" {
		n.enqueue(n.webhooks, "webhook", job{ev, t})
	}
	if n.opts.Email() != nil {
		select {
		case n.emails <- ev:
		default:
			n.dropped("email", "the e-mail worker is slower than the transitions", ev)
		}
	}
}

func (n *Notifier) enqueue(q chan job, sink string, j job) {
	select {
	case q <- j:
	default:
		n.dropped(sink, "the "+sink+" is slower than the transitions", j.ev)
	}
}

// Run delivers queued events until ctx ends, then returns once the
// deliveries in progress have stopped. Events still queued are dropped.
func (n *Notifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-n.events:
				n.route(ev)
			}
		}
	})
	wg.Go(func() { n.work(ctx, n.commands, "command", n.runCommand) })
	wg.Go(func() { n.work(ctx, n.webhooks, "webhook", n.postWebhook) })
	wg.Go(func() { n.runEmail(ctx) })
	wg.Wait()
}

func (n *Notifier) work(ctx context.Context, q chan job, sink string, deliver func(context.Context, job) error) {
	for {
		select {
		case <-ctx.Done():
			if left := len(q); left > 0 {
				n.opts.Logger.Warn("notify: stopping with events undelivered", "sink", sink, "events", left)
			}
			return
		case j := <-q:
			err := deliver(ctx, j)
			if err == nil {
				n.opts.Recorder.Notification(sink, "success")
				continue
			}
			n.opts.Recorder.Notification(sink, "failure")
			n.opts.Logger.Error("notify: delivery failed", "sink", sink,
				"virtual_server", j.ev.VirtualServer, "real_server", j.ev.RealServer, "to", j.ev.To, "err", err)
		}
	}
}

// Env returns the variables a notify_command gets, besides the
// director's own environment.
func Env(ev Event) []string {
	return []string{
		"DIRECTOR_EVENT=" + ev.Type,
		"DIRECTOR_TIME=" + ev.Time.UTC().Format(time.RFC3339Nano),
		"DIRECTOR_HOST=" + ev.Director,
		"DIRECTOR_VIRTUAL_SERVER=" + ev.VirtualServer,
		"DIRECTOR_REAL_SERVER=" + ev.RealServer,
		"DIRECTOR_FROM=" + ev.From,
		"DIRECTOR_TO=" + ev.To,
		"DIRECTOR_REASON=" + ev.Reason,
		"DIRECTOR_CHECK=" + ev.Check,
		"DIRECTOR_VRRP_INSTANCE=" + ev.VRRPInstance,
	}
}

// maxOutput is how much of a failing command's output the log keeps.
const maxOutput = 2 << 10

func (n *Notifier) runCommand(ctx context.Context, j job) error {
	cmdCtx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	body, err := json.Marshal(j.ev)
	if err != nil {
		return fmt.Errorf("encoding the event: %w", err)
	}
	cmd := exec.Command(j.target.Command[0], j.target.Command[1:]...)
	cmd.Env = append(os.Environ(), Env(j.ev)...)
	cmd.Stdin = bytes.NewReader(body)
	out := &limitedBuffer{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Once the group is killed nothing holds the output pipe; this only
	// bounds the wait should something outside the group hold it.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("notify_command %s: %w", j.target.Command[0], err)
	}
	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitExited(pgid)
	}()
	killedFor := ""
	select {
	case <-exited:
		// What the command left running in its group (a backgrounded
		// child) ends with it.
		n.killGroup(pgid, j, "exited")
	case <-cmdCtx.Done():
		killedFor = "timeout"
		if ctx.Err() != nil {
			killedFor = "shutdown"
		}
		n.killGroup(pgid, j, killedFor)
		<-exited
	}
	err = cmd.Wait()
	switch {
	case killedFor == "timeout":
		return fmt.Errorf("notify_command %s: killed after notify_timeout %s; output: %q", j.target.Command[0], n.opts.Timeout, out.String())
	case killedFor == "shutdown":
		return fmt.Errorf("notify_command %s: killed as the director stops; output: %q", j.target.Command[0], out.String())
	case err == nil:
		return nil
	}
	return fmt.Errorf("notify_command %s: %w; output: %q", j.target.Command[0], err, out.String())
}

// killGroup kills what is alive of a command's process group, and counts
// and logs it when anything was: when says why ("timeout", "shutdown", or
// "exited": left behind by a command that has ended).
func (n *Notifier) killGroup(pgid int, j job, when string) {
	killed := killGroup(pgid)
	if killed == 0 {
		return
	}
	if n.opts.Killed != nil {
		n.opts.Killed(when, killed)
	}
	n.opts.Logger.Warn("notify: killed the processes of a notify_command", "command", j.target.Command[0], "processes", killed, "when", when,
		"virtual_server", j.ev.VirtualServer, "real_server", j.ev.RealServer)
}

func (n *Notifier) postWebhook(ctx context.Context, j job) error {
	body, err := json.Marshal(j.ev)
	if err != nil {
		return fmt.Errorf("encoding the event: %w", err)
	}
	delay := n.opts.RetryDelay
	var last error
	for attempt := 1; attempt <= n.opts.Attempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("notify_url %s: stopped before attempt %d: %w", redact(j.target.URL), attempt, last)
			case <-t.C:
			}
			delay *= 2
		}
		retry, err := n.postOnce(ctx, j.target.URL, body)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			break
		}
	}
	return fmt.Errorf("notify_url %s: %w", redact(j.target.URL), last)
}

// postOnce sends one attempt and says whether a failure is worth retrying:
// network errors, 429 and 5xx are; other statuses will not get better.
func (n *Notifier) postOnce(ctx context.Context, url string, body []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "director-notify")
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap() // the URL is already in our message, maybe with a secret
		}
		return true, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	return resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500,
		fmt.Errorf("answered %s", resp.Status)
}

// redact drops the query and user info of a webhook URL for logs: they
// often carry tokens.
func redact(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i] + "?…"
	}
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.Index(u[i+3:], "@"); at >= 0 && !strings.Contains(u[i+3:i+3+at], "/") {
			u = u[:i+3] + "…@" + u[i+3+at+1:]
		}
	}
	return u
}

// limitedBuffer keeps the first max bytes written and discards the rest.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
