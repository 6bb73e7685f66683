package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kickagent/kickagent/internal/procfs"
)

// anvilCPU reads the CPU time of the anvil process behind a socket, from
// /proc: what each dump costs Dovecot is then a metric, not a guess. Anvil
// is found as the child named "anvil" of the master whose pid is in
// master.pid next to the socket (base_dir; also inside a chroot, whose
// processes share the agent's pid namespace). Without /proc or master.pid
// nothing is reported; nothing else depends on it.
type anvilCPU struct {
	socket string
	pid    int // 0: not found yet
	master int
}

// read returns anvil's CPU time so far; false when it cannot be known.
func (c *anvilCPU) read() (time.Duration, bool) {
	if c.socket == "" {
		return 0, false
	}
	if c.pid != 0 {
		if d, ok := c.cpu(); ok {
			return d, true
		}
	}
	// Not found yet, or gone (a Dovecot restart): look again.
	c.pid = c.find()
	if c.pid == 0 {
		return 0, false
	}
	return c.cpu()
}

// cpu reads the time of c.pid if it is still the master's anvil.
func (c *anvilCPU) cpu() (time.Duration, bool) {
	st, err := procfs.ReadStat("", int64(c.pid))
	if err != nil || st.Comm != "anvil" || st.PPid != int64(c.master) {
		return 0, false
	}
	// schedstat's first field is nanoseconds on a CPU; stat's utime+stime
	// only counts clock ticks (10 ms), as coarse as a small dump.
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(c.pid) + "/schedstat"); err == nil {
		if f := bytes.Fields(b); len(f) > 0 {
			if ns, err := strconv.ParseInt(string(f[0]), 10, 64); err == nil {
				return time.Duration(ns), true
			}
		}
	}
	if st.Ticks < 0 {
		return 0, false
	}
	return time.Duration(st.Ticks) * 10 * time.Millisecond, true
}

func (c *anvilCPU) find() int {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(c.socket), "master.pid"))
	if err != nil {
		return 0
	}
	master, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil || master <= 0 {
		return 0
	}
	c.master = master
	for _, pid := range children(master) {
		if st, err := procfs.ReadStat("", int64(pid)); err == nil && st.Comm == "anvil" && st.PPid == int64(master) {
			return pid
		}
	}
	return 0
}

// children lists the candidates for a process's children: the kernel's
// list where it keeps one (CONFIG_PROC_CHILDREN), else every process.
func children(pid int) []int {
	var out []int
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	if err != nil {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return nil
		}
		for _, e := range ents {
			if n, err := strconv.Atoi(e.Name()); err == nil {
				out = append(out, n)
			}
		}
		return out
	}
	for _, f := range bytes.Fields(b) {
		if n, err := strconv.Atoi(string(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}
