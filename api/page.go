package api

import (
	"fmt"
	"html/template"
	"time"
)

// maxPageEvents bounds the transitions the page lists; the JSON has them all.
const maxPageEvents = 20

// pageData is what the status page template sees.
type pageData struct {
	S       StatusV1
	Events  []EventV1
	Refresh int    // seconds
	Pool    PoolV1 // every virtual server's, added up
}

func newPageData(s StatusV1, refresh time.Duration) pageData {
	d := pageData{S: s, Events: s.Events, Refresh: max(1, int(refresh/time.Second))}
	if len(d.Events) > maxPageEvents {
		d.Events = d.Events[:maxPageEvents]
	}
	for _, vs := range s.VirtualServers {
		p := vs.Pool
		d.Pool = PoolV1{
			Disabled: d.Pool.Disabled + p.Disabled, Drained: d.Pool.Drained + p.Drained, Draining: d.Pool.Draining + p.Draining,
			Serving: d.Pool.Serving + p.Serving, Damped: d.Pool.Damped + p.Damped, Down: d.Pool.Down + p.Down,
			Unknown: d.Pool.Unknown + p.Unknown, Idle: d.Pool.Idle + p.Idle, Total: d.Pool.Total + p.Total,
		}
	}
	return d
}

// poolColour is a pool's badge: green only while every real server gets
// traffic, red while none does.
func poolColour(p PoolV1) string {
	switch {
	case p.Total > 0 && p.Serving == 0:
		return "b-down"
	case p.Serving < p.Total:
		return "b-warn"
	}
	return "b-up"
}

var pageFuncs = template.FuncMap{
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return humanDuration(time.Since(t)) + " ago"
	},
	"ms": func(seconds float64) string {
		d := time.Duration(seconds * float64(time.Second))
		if d < time.Millisecond {
			return fmt.Sprintf("%dµs", d.Microseconds())
		}
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	},
	"weight": func(w *int64) string {
		if w == nil {
			return "absent"
		}
		return fmt.Sprint(*w)
	},
	"short": func(s string) string { return s[:min(len(s), 12)] },
	"deref": func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	},
	"service": func(s ServiceV1) string {
		if s.FWMark != 0 {
			return fmt.Sprintf("FWM %d %s", s.FWMark, s.Family)
		}
		return fmt.Sprintf("%s %s", s.Protocol, s.Address)
	},
	"cardClass": func(vs VirtualServerV1) string {
		switch poolColour(vs.Pool) {
		case "b-down":
			return "all-down"
		case "b-warn":
			return "some-down"
		}
		return ""
	},
	"poolColour": poolColour,
	// oldestFirst turns the JSON's newest-first history around: the page
	// draws checks left to right in time, as the logs' recent= lists them.
	"oldestFirst": func(rs []CheckResultV1) []CheckResultV1 {
		out := make([]CheckResultV1, len(rs))
		for i, r := range rs {
			out[len(rs)-1-i] = r
		}
		return out
	},
}

// humanDuration renders d the way a person says it: "42s", "5m3s",
// "2h14m", "3d4h". Precision drops as the duration grows.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
}
