package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/lvsdirector/director/api"
)

func TestStatusShowsOverridesAndPanic(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	exp := now.Add(90 * time.Minute)
	until := now.Add(2 * time.Minute)
	st := api.StatusV1{Version: "v1", VirtualServers: []api.VirtualServerV1{{
		Name: "web", Service: api.ServiceV1{Protocol: "tcp", Address: "192.0.2.10:80", Scheduler: "wrr"},
		InKernel: true, Panic: true, QuorumLost: true, HealthyWeight: 100, Quorum: 200,
		RealServers: []api.RealServerV1{
			{Address: "10.0.0.11:8080", State: "up", Override: &api.OverrideV1{Kind: "drain", Reason: "new kernel", Source: "api", By: "10.1.1.1:4242", Expires: &exp}},
			{Address: "10.0.0.12:8080", State: "up", Suppressed: true, SuppressedUntil: &until, FlapPenalty: 1800},
			{Address: "10.0.0.13:8080", State: "down", HeldByPanic: true},
			{Address: "10.0.0.14:8080", State: "up", SlowStart: &api.SlowStartV1{Weight: 40, TargetWeight: 100, Percent: 40}},
		},
	}}}
	var b bytes.Buffer
	printStatus(&b, st, now)
	out := b.String()
	for _, want := range []string{"PANIC", "QUORUM LOST 100/200", "up,drain", "up,damped", "down,held", "up,slow start 40%",
		"Overrides:", "web 10.0.0.11:8080  drain by api 10.1.1.1:4242, for another 1h30m0s: new kernel",
		"web 10.0.0.12:8080  held out by flap damping for about another 2m0s (penalty 1800)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
