//go:build !linux

package main

import "time"

// preciseSleep is time.Sleep where nanosleep(2) and a settable timer slack are not at hand.
func preciseSleep() (sleep func(time.Duration), done func()) { return time.Sleep, func() {} }
