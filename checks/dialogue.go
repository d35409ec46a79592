package checks

import (
	"context"
	"crypto/tls"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// DialogueOptions are the options of dialogue checks: a TCP connection,
// optionally in TLS from the start, and an ordered list of steps.
type DialogueOptions struct {
	Steps []Step
	TLS   bool // complete a TLS handshake before the first step
	TLSOptions
}

// Step is one exchange of a dialogue, done in this order: Send is
// written, the answer is read until Expect matches, then, with StartTLS,
// the connection is upgraded to TLS.
type Step struct {
	// Send is written as is, after escapes (\r \n \t \0 \\ \xNN, see
	// unescape); empty sends nothing (a greeting is read with Expect
	// alone). Whatever was received and not yet matched is dropped first:
	// it answered an earlier step.
	Send string
	// Expect is a regular expression the data received must match; empty
	// waits for nothing. The data after the match is kept for the next
	// step that sends nothing.
	Expect string
	// StartTLS upgrades the connection to TLS once Send and Expect are
	// done (SMTP STARTTLS, POP3 STLS, IMAP STARTTLS, FTP AUTH TLS).
	// Anything received before the handshake is dropped unread, so a
	// server (or someone in between) cannot slip plaintext into what the
	// TLS steps read.
	StartTLS bool
}

// stepKeys are the keys of one entry of steps.
var stepKeys = []string{"send", "expect", "starttls"}

// dialogueReadCap is how much one step reads while waiting for Expect.
const dialogueReadCap = 4 << 10

var dialogueKind = Kind{
	Name: "dialogue",
	// ldirectord's services that are dialogues here; config.example.toml
	// has their steps.
	Foreign: map[string]string{
		"smtp": "ldirectord's service = smtp",
		"pop":  "ldirectord's service = pop",
		"imap": "ldirectord's service = imap",
		"ftp":  "ldirectord's service = ftp",
		"nntp": "ldirectord's service = nntp",
	},
	Keys: slices.Concat([]Key{{Name: "steps"}, {Name: "tls", Note: "https checks always use TLS"}},
		tlsOptionKeys("with tls = true or a starttls step")),
	Zero:     DialogueOptions{},
	Decode:   decodeDialogue,
	build:    newDialogue,
	DataPath: true,
}

func decodeDialogue(d Decoder) Options {
	var o DialogueOptions
	entries, _ := d.Tables("steps", stepKeys)
	for _, e := range entries {
		var s Step
		s.Send, _ = e.String("send")
		s.Expect, _ = e.String("expect")
		s.StartTLS, _ = e.Bool("starttls")
		o.Steps = append(o.Steps, s)
	}
	o.TLS, _ = d.Bool("tls")
	if o.usesTLS() {
		o.TLSOptions = decodeTLS(d)
	} else {
		d.Unused(tlsKeys...)
	}
	return o
}

// usesTLS says whether the dialogue ever speaks TLS.
func (o DialogueOptions) usesTLS() bool {
	return o.TLS || slices.ContainsFunc(o.Steps, func(s Step) bool { return s.StartTLS })
}

// Validate judges every step: its escapes, its regular expression, that
// it does something, and that it does not start TLS twice.
func (o DialogueOptions) Validate() []OptionError {
	if len(o.Steps) == 0 {
		return []OptionError{{Key: "steps", With: []string{"type"},
			Msg: "a dialogue check needs at least one step, such as { send = 'PING\\r\\n', expect = '^\\+PONG' }"}}
	}
	var errs []OptionError
	inTLS := 0 // the step that started TLS; -1 for tls = true
	if o.TLS {
		inTLS = -1
	}
	for i, s := range o.Steps {
		at := func(entry, msg string, with ...string) {
			errs = append(errs, OptionError{Key: "steps", Index: i + 1, Entry: entry, With: with, Msg: msg})
		}
		if s.Send == "" && s.Expect == "" && !s.StartTLS {
			at("", "a step needs send, expect or starttls")
		}
		if msg := escapeProblem(s.Send); msg != "" {
			at("send", msg)
		}
		if msg := regexpProblem(s.Expect); msg != "" {
			at("expect", msg)
		}
		if !s.StartTLS {
			continue
		}
		switch {
		case inTLS < 0:
			at("starttls", "the connection is TLS from the start (tls = true)", "tls")
		case inTLS > 0:
			at("starttls", fmt.Sprintf("the connection is already TLS (starttls in steps[%d])", inTLS-1))
		default:
			inTLS = i + 1
		}
	}
	return errs
}

// Canonical renders every option, sends as the bytes they send.
func (o DialogueOptions) Canonical() string {
	var c canonical
	c.b.WriteString("steps=[")
	for _, s := range o.Steps {
		var sc canonical
		sc.str("send", sentBytes(s.Send))
		sc.str("expect", s.Expect)
		sc.boolean("starttls", s.StartTLS)
		c.b.WriteString("{" + sc.text() + "},")
	}
	c.b.WriteString("] ")
	c.boolean("tls", o.TLS)
	o.TLSOptions.canonical(&c)
	return c.text()
}

// Describe is "dialogue 10.0.0.11:25 (3 steps)", "dialogue+tls ...".
func (o DialogueOptions) Describe(s Spec) string {
	name := "dialogue "
	if o.TLS {
		name = "dialogue+tls "
	}
	steps := "steps"
	if len(o.Steps) == 1 {
		steps = "step"
	}
	return fmt.Sprintf("%s%s (%d %s)", name, s.Target, len(o.Steps), steps)
}

// dialogueProber talks a line protocol through its steps. The whole
// dialogue, connect and handshakes included, is bounded by the check's
// timeout, so each step is too. Reasons name the step that failed,
// counted from 1: "expect mismatch at step 2", "timeout at step 3",
// "tls: certificate signed by unknown authority at step 3"; a failed
// connect or initial handshake is reported as a tcp check's is.
type dialogueProber struct {
	spec  *Spec
	steps []compiledStep
	tls   *tls.Config // nil when the dialogue never speaks TLS
	tlsAt bool        // TLS from the start
}

type compiledStep struct {
	send     []byte
	expect   *regexp.Regexp // nil waits for nothing
	startTLS bool
}

func newDialogue(spec *Spec, _ *Shared) (Prober, error) {
	o := spec.Options.(DialogueOptions)
	p := &dialogueProber{spec: spec, tlsAt: o.TLS}
	for _, s := range o.Steps {
		send, _ := unescape(s.Send) // Validate checked it
		cs := compiledStep{send: []byte(send), startTLS: s.StartTLS}
		if s.Expect != "" {
			cs.expect = regexp.MustCompile(s.Expect)
		}
		p.steps = append(p.steps, cs)
	}
	if o.usesTLS() {
		var err error
		if p.tls, err = tlsConfig(spec, o.TLSOptions, ""); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Probe connects, runs every step and closes the connection, all within
// the deadline.
func (p *dialogueProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

func (p *dialogueProber) probe(ctx context.Context) string {
	var initial *tls.Config
	if p.tlsAt {
		initial = p.tls
	}
	raw, err := dial(ctx, p.spec, initial)
	if err != nil {
		return classify(ctx, err)
	}
	conn := raw
	defer func() { conn.Close() }()

	// A TLS connection set up later wraps the same socket, so this covers
	// its reads, writes and handshake too.
	defer deadlineConn(ctx, raw)()

	var pending []byte // received, not yet matched
	for i, s := range p.steps {
		fail := func(reason string) string {
			if strings.HasPrefix(reason, localPrefix) {
				// The director's trouble, not the step's: the
				// reason stays as inconclusive reasons are (a
				// cause of its own in the metrics, RanLate).
				return reason
			}
			return reason + " at step " + strconv.Itoa(i+1)
		}
		if len(s.send) > 0 {
			pending = pending[:0]
			if _, err := conn.Write(s.send); err != nil {
				return fail(classify(ctx, err))
			}
		}
		if s.expect != nil {
			var ok bool
			var err error
			pending, ok, err = expectIn(conn, s.expect, pending, dialogueReadCap)
			switch {
			case ok:
			case len(pending) > 0 || err == errReadCap:
				return fail("expect mismatch")
			default:
				return fail(classify(ctx, err))
			}
		}
		if s.startTLS {
			pending = pending[:0]
			tc, err := handshake(ctx, conn, p.tls) // looks once when starved (late.go)
			if err != nil {
				return fail(classify(ctx, err))
			}
			conn = tc
		}
	}
	return ""
}
