package main

import (
	"sync"
	"time"
)

// schedule calls fire(i, at) in its own goroutine for i = 0 … n-1 at start + i/rate, and
// waits for all of them. It returns the largest delay of a call behind its time. The
// loop sleeps until the next due time and then catches up on every call that is due, so a
// late wake-up shifts no later call.
func schedule(rate float64, n int, fire func(i int, at time.Time)) time.Duration {
	sleep, done := preciseSleep()
	defer done()
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now().Add(10 * time.Millisecond)
	var late time.Duration
	for i := 0; i < n; {
		now := time.Now()
		for ; i < n; i++ {
			at := start.Add(time.Duration(i) * interval)
			if at.After(now) {
				break
			}
			late = max(late, now.Sub(at))
			wg.Add(1)
			go func(i int, at time.Time) {
				defer wg.Done()
				fire(i, at)
			}(i, at)
		}
		if i < n {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				sleep(d)
			}
		}
	}
	wg.Wait()
	return late
}
