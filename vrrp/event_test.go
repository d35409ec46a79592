package vrrp

import (
	"errors"
	"testing"
)

// The lines are keepalived's own (vrrp_notify.c, notify_fifo(): "%s \"%s\" %s %d\n"
// with INSTANCE or GROUP, the name, the state word and the effective
// priority; 0 for groups), as keepalived 2.2.7 wrote them in the e2e VM.
func TestParseLine(t *testing.T) {
	for _, tt := range []struct {
		line string
		want Event
	}{
		{`INSTANCE "VI_1" MASTER 100`, Event{Name: "VI_1", State: Master, Priority: 100}},
		{`INSTANCE "VI_1" BACKUP 150`, Event{Name: "VI_1", State: Backup, Priority: 150}},
		{`INSTANCE "VI_1" FAULT 0`, Event{Name: "VI_1", State: Fault, Priority: 0}},
		{`INSTANCE "VI_1" STOP 100`, Event{Name: "VI_1", State: Stop, Priority: 100}},
		{`GROUP "G1" MASTER 0`, Event{Group: true, Name: "G1", State: Master}},
		{`INSTANCE "VI_1" MASTER_PRIORITY 200`, Event{Name: "VI_1", State: Master, Priority: 200, Kind: PriorityChange}},
		{`INSTANCE "VI_1" BACKUP_PRIORITY 100`, Event{Name: "VI_1", State: Backup, Priority: 100, Kind: PriorityChange}},
		{`INSTANCE "VI_1" MASTER_RX_LOWER_PRI 200`, Event{Name: "VI_1", State: Master, Priority: 200, Kind: LowerPriorityMaster}},
		{`INSTANCE "web.vip:1" MASTER 254`, Event{Name: "web.vip:1", State: Master, Priority: 254}},
		{"INSTANCE \"VI_1\" BACKUP 100\r", Event{Name: "VI_1", State: Backup, Priority: 100}},
	} {
		got, err := ParseLine(tt.line)
		if err != nil || got != tt.want {
			t.Errorf("%q: %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
		if err == nil {
			if again, err := ParseLine(got.String()); err != nil || again != got {
				t.Errorf("%q: String() %q does not parse back: %+v, %v", tt.line, got.String(), again, err)
			}
		}
	}
	for _, line := range []string{
		``,
		`VS [10.0.0.1]:tcp:80 UP`, // the checker's lines, when it shares the FIFO
		`RS [10.0.0.11]:tcp:80 [10.0.0.1]:tcp:80 DOWN`,
		`INSTANCE VI_1 MASTER 100`,
		`INSTANCE "VI_1 MASTER 100`,
		`INSTANCE "" MASTER 100`,
		`INSTANCE "VI_1" {UNKNOWN} 100`,
		`INSTANCE "VI_1" MASTER`,
		`INSTANCE "VI_1" MASTER high`,
		`INSTANCE "VI_1" MASTER 100 extra`,
		`INSTANCE "VI_1" MASTER 300`,
	} {
		if ev, err := ParseLine(line); !errors.Is(err, ErrNotVRRP) {
			t.Errorf("%q: %+v, %v; want ErrNotVRRP", line, ev, err)
		}
	}
}
