package checks

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"os"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// RADIUSOptions are the options of radius checks: one Access-Request
// (PAP), signed with the shared secret.
type RADIUSOptions struct {
	SecretFile   string // the shared secret; required
	Login        string // User-Name; default UserAgent
	PasswordFile string // User-Password; none: an empty password
	// RejectIsUp counts an Access-Reject as alive too: the server
	// answered, signed with the secret, whatever it thinks of the user.
	RejectIsUp bool
}

// radiusSends is how many times a probe sends its request, spread over
// the timeout, as RADIUS clients retransmit over UDP.
const radiusSends = 3

var radiusKind = Kind{
	Name: "radius",
	Keys: []Key{{Name: "secret_file"}, {Name: "login"}, {Name: "password_file"}, {Name: "reject_is_up"}},
	Zero: RADIUSOptions{}, Decode: decodeRADIUS, build: newRADIUS,
}

func decodeRADIUS(d Decoder) Options {
	var o RADIUSOptions
	o.SecretFile = decodeSecretFile(d, "secret_file", true)
	o.Login, _ = d.String("login")
	o.PasswordFile = decodeSecretFile(d, "password_file", false)
	o.RejectIsUp, _ = d.Bool("reject_is_up")
	return o
}

// Validate checks that there is a secret and that the user name fits in
// its attribute.
func (o RADIUSOptions) Validate() []OptionError {
	var errs []OptionError
	if o.SecretFile == "" {
		errs = append(errs, OptionError{Key: "secret_file", With: []string{"type"},
			Msg: "missing: radius checks sign their requests with the shared secret in this file"})
	}
	if len(o.Login) > 253 {
		errs = append(errs, OptionError{Key: "login", Msg: "longer than a RADIUS User-Name (253 bytes)"})
	}
	return errs
}

func (o RADIUSOptions) login() string {
	if o.Login == "" {
		return UserAgent
	}
	return o.Login
}

// Canonical renders every option with its default applied.
func (o RADIUSOptions) Canonical() string {
	var c canonical
	c.str("secret_file", o.SecretFile)
	c.str("login", o.login())
	c.str("password_file", o.PasswordFile)
	c.boolean("reject_is_up", o.RejectIsUp)
	return c.text()
}

// Describe is "radius 10.0.0.11:1812".
func (o RADIUSOptions) Describe(s Spec) string { return "radius " + s.Target.String() }

// radiusProber sends one Access-Request over UDP, with a
// Message-Authenticator (RFC 3579; servers hardened against BlastRADIUS
// require it), resent twice while no answer comes. Only a reply that
// matches the request's identifier and is signed with the secret counts.
//
// Reasons: "rejected" (Access-Reject, unless RejectIsUp), "auth failed:
// secret mismatch" (replies came, none signed with the secret), "error:
// radius <code>" for another reply (Access-Challenge), "refused" (ICMP
// port unreachable), "timeout" (silence: also what a server that checks
// the Message-Authenticator does with a wrong secret).
type radiusProber struct {
	spec *Spec
	opts RADIUSOptions
}

func newRADIUS(spec *Spec, _ *Shared) (Prober, error) {
	return &radiusProber{spec: spec, opts: spec.Options.(RADIUSOptions)}, nil
}

// Probe sends the request and waits for its answer, within the deadline.
func (p *radiusProber) Probe(ctx context.Context) Result {
	return run(ctx, p.spec.Timeout, p.probe)
}

func (p *radiusProber) probe(ctx context.Context) string {
	secret, err := readSecret(p.opts.SecretFile)
	if err != nil {
		return "error: secret_file: " + err.Error()
	}
	if secret == "" {
		return "error: secret_file: " + p.opts.SecretFile + " is empty"
	}
	var password string
	if p.opts.PasswordFile != "" {
		if password, err = readSecret(p.opts.PasswordFile); err != nil {
			return "error: password_file: " + err.Error()
		}
	}
	req, err := radiusRequest([]byte(secret), p.opts.login(), password)
	if err != nil {
		return "error: " + shortError(err)
	}

	conn, err := dialNetwork(ctx, p.spec, "udp")
	if err != nil {
		return classify(ctx, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	deadline, _ := ctx.Deadline() // run always sets one
	spacing := time.Until(deadline) / radiusSends
	buf := make([]byte, radius.MaxPacketLength)
	unsigned := false
	for sent := 0; ; {
		if _, err := conn.Write(req); err != nil {
			return classify(ctx, err)
		}
		sent++
		next := deadline
		if sent < radiusSends {
			next = time.Now().Add(spacing)
		}
		conn.SetReadDeadline(next)
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) && sent < radiusSends && ctx.Err() == nil {
				break // send again
			}
			if err != nil {
				if unsigned && !errors.Is(ctx.Err(), context.Canceled) {
					return "auth failed: secret mismatch"
				}
				return classify(ctx, err)
			}
			reply := buf[:n]
			if n < 20 || reply[1] != req[1] {
				continue // not a reply to this request
			}
			if !radius.IsAuthenticResponse(reply, req, []byte(secret)) {
				unsigned = true
				continue
			}
			switch code := radius.Code(reply[0]); {
			case code == radius.CodeAccessAccept:
				return ""
			case code == radius.CodeAccessReject && p.opts.RejectIsUp:
				return ""
			case code == radius.CodeAccessReject:
				return "rejected"
			default:
				return "error: radius " + code.String()
			}
		}
	}
}

// radiusRequest encodes an Access-Request for login and password (PAP)
// with a Message-Authenticator: an HMAC-MD5 of the packet, keyed with the
// secret, computed with the attribute's value zeroed.
func radiusRequest(secret []byte, login, password string) ([]byte, error) {
	p := radius.New(radius.CodeAccessRequest, secret)
	if err := rfc2865.UserName_SetString(p, login); err != nil {
		return nil, err
	}
	if err := rfc2865.UserPassword_SetString(p, password); err != nil {
		return nil, err
	}
	if err := rfc2865.NASIdentifier_SetString(p, UserAgent); err != nil {
		return nil, err
	}
	if err := rfc2869.MessageAuthenticator_Set(p, make([]byte, md5.Size)); err != nil {
		return nil, err
	}
	b, err := p.Encode()
	if err != nil {
		return nil, err
	}
	mac := hmac.New(md5.New, secret)
	mac.Write(b)
	if err := rfc2869.MessageAuthenticator_Set(p, mac.Sum(nil)); err != nil {
		return nil, err
	}
	return p.Encode()
}
