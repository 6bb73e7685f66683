package kick

import (
	"fmt"
	"slices"
	"testing"

	"github.com/kickagent/kickagent/internal/anvil"
)

// BeforeSend sees exactly the units that go out, before the first signal
// or KICK-USER: not the refused ones, and nothing in a dry run.
func TestRunBeforeSend(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    *fakeAnvil
		sel  func(*anvil.Session) bool
		want []string // the units' pids, in plan order
	}{
		{"2.3", new23(), byUser("alice"), []string{"100"}},
		{"2.4", new24(), aliceFrom("127.0.0.2"), []string{"20"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := &fakeSig{anvil: tc.a}
			var got []string
			calls := 0
			opt := fast
			opt.BeforeSend = func(units []*Unit) {
				calls++
				if len(sig.calls)+len(tc.a.kicks) != 0 {
					t.Errorf("BeforeSend called after kicks went out: signals %q, KICK-USER %q", sig.calls, tc.a.kicks)
				}
				for _, u := range units {
					got = append(got, fmt.Sprint(u.PID))
				}
			}
			if _, err := run(t, tc.a, sig, tc.sel, opt); err != nil {
				t.Fatal(err)
			}
			if calls != 1 || !slices.Equal(got, tc.want) {
				t.Errorf("BeforeSend calls %d, units %q; want 1 call with %q", calls, got, tc.want)
			}
		})
	}
	t.Run("dry run", func(t *testing.T) {
		a := new23()
		opt := fast
		opt.DryRun = true
		opt.BeforeSend = func([]*Unit) { t.Error("BeforeSend called in a dry run") }
		if _, err := run(t, a, &fakeSig{anvil: a}, byUser("alice"), opt); err != nil {
			t.Fatal(err)
		}
	})
}
