package main

import (
	"testing"
	"time"
)

// poll_max is what it says: a poll_max of 1s once came out as 5s.
func TestPollDelays(t *testing.T) {
	for _, tc := range []struct{ min, max, wantMin, wantMax time.Duration }{
		{0, 0, time.Second, 5 * time.Second},
		{time.Second, time.Second, time.Second, time.Second},
		{2 * time.Second, 0, 2 * time.Second, 5 * time.Second},
		{10 * time.Second, 0, 10 * time.Second, 10 * time.Second},
		{0, 3 * time.Second, time.Second, 3 * time.Second},
	} {
		if lo, hi := pollDelays(tc.min, tc.max); lo != tc.wantMin || hi != tc.wantMax {
			t.Errorf("pollDelays(%v, %v) = %v, %v; want %v, %v", tc.min, tc.max, lo, hi, tc.wantMin, tc.wantMax)
		}
	}
}
