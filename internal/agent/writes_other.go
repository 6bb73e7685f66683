//go:build !linux

package agent

import "errors"

// newWriteWatcher: only Linux reports a close after write (inotify's
// IN_CLOSE_WRITE); elsewhere Watch debounces fsnotify's Write events.
func newWriteWatcher([]string) (*writeWatcher, error) {
	return nil, errors.New("close-after-write events need Linux inotify")
}
