package config

import (
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// DefaultNotifyTimeout bounds one notify_command run and one webhook attempt.
const DefaultNotifyTimeout = 10 * time.Second

// Notify says where transition events go. In [director] it is the
// default; a virtual server's notify_command and notify_url each replace
// the default when set (an empty value turns that sink off).
type Notify struct {
	Command []string // argv, run without a shell; empty: none
	URL     string   // webhook; empty: none
	Timeout time.Duration
}

// notifyKeys are the keys notify reads; the sections list them.
var notifyKeys = []string{"notify_command", "notify_url"}

// notify reads notify_command and notify_url from t over base.
func (l *loader) notify(t table, base Notify) Notify {
	out := base
	if list, n, ok := t.strList("notify_command"); ok {
		switch {
		case len(list) > 0 && list[0] == "":
			l.errorf(n, "the first element must be the program to run")
		case len(list) > 0 && !filepath.IsAbs(list[0]):
			l.errorf(n, "%q must be an absolute path, such as \"/usr/local/bin/lvs-notify\": the command is run directly, without a shell or PATH lookup", list[0])
		default:
			out.Command = list
			if len(list) > 0 {
				if fi, err := os.Stat(list[0]); err != nil {
					l.warnf(n, "%s: %v; transitions will fail to notify until it exists", list[0], err)
				} else if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
					l.warnf(n, "%s is not an executable file; transitions will fail to notify", list[0])
				}
			}
		}
	}
	if s, n, ok := t.str("notify_url"); ok {
		if s == "" {
			out.URL = ""
		} else if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			l.errorf(n, "%q is not an http or https URL, such as \"https://alerts.example.com/hook\"", s)
		} else {
			out.URL = s
		}
	}
	return out
}

// notifyTimeout reads [director] notify_timeout.
func (l *loader) notifyTimeout(t table, n *Notify) {
	if v, _, ok := t.positive("notify_timeout"); ok {
		n.Timeout = v
	}
}
