package main

// CPU use over measured windows, as a fraction of one core: the load
// generator's own (user and system), the server's (all its processes: a
// supervisor's workers are summed, and each is also given apart), that of
// auxiliary processes (a Redis broker), summed, and the whole machine's
// (/proc/stat), so that what other programs took meanwhile shows.

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// watched is the processes whose CPU is measured besides the generator's:
// the server's (-pid) and auxiliary ones (-aux-pid).
type watched struct {
	server, aux []int
}

// cpuSample is a point in time with the CPU time used so far.
type cpuSample struct {
	wall      time.Time
	user, sys time.Duration   // this process
	server    []time.Duration // each server process, all threads
	aux       time.Duration   // the auxiliary processes, summed
	busy      time.Duration   // every CPU of the machine, not idle
	steal     time.Duration   // time the hypervisor gave to other guests
}

func sampleCPU(w watched) cpuSample {
	s := cpuSample{wall: time.Now(), server: make([]time.Duration, len(w.server))}
	s.user, s.sys = selfCPU()
	for i, pid := range w.server {
		s.server[i], _ = processCPU(pid)
	}
	for _, pid := range w.aux {
		d, _ := processCPU(pid)
		s.aux += d
	}
	s.busy, s.steal = machineCPU()
	return s
}

// cpuTotals adds up the CPU time of one or more windows.
type cpuTotals struct {
	w                                 watched
	wall, user, sys, aux, busy, steal time.Duration
	server                            []time.Duration
}

func (t *cpuTotals) add(from, to cpuSample) {
	if t.server == nil {
		t.server = make([]time.Duration, len(t.w.server))
	}
	t.wall += to.wall.Sub(from.wall)
	t.user += to.user - from.user
	t.sys += to.sys - from.sys
	for i := range t.server {
		t.server[i] += to.server[i] - from.server[i]
	}
	t.aux += to.aux - from.aux
	t.busy += to.busy - from.busy
	t.steal += to.steal - from.steal
}

// record adds client_cpu, its user and system parts, server_cpu (all the
// server's processes, when their pids are known; server_cpu_each with more
// than one) and aux_cpu (with -aux-pid) to res.
func (t *cpuTotals) record(res result) {
	wall := t.wall.Seconds()
	if wall <= 0 {
		return
	}
	res["client_cpu"] = (t.user + t.sys).Seconds() / wall
	res["client_user_cpu"] = t.user.Seconds() / wall
	res["client_sys_cpu"] = t.sys.Seconds() / wall
	if len(t.server) > 0 {
		var total time.Duration
		each := make([]float64, len(t.server))
		for i, d := range t.server {
			total += d
			each[i] = d.Seconds() / wall
		}
		res["server_cpu"] = total.Seconds() / wall
		if len(each) > 1 {
			res["server_cpu_each"] = each
		}
	}
	if len(t.w.aux) > 0 {
		res["aux_cpu"] = t.aux.Seconds() / wall
	}
	// Busy time of all CPUs, and what remains of it once the generator, the
	// server and the auxiliary processes are taken away: other programs and
	// the kernel's own work (interrupts, kswapd...). Counted in 10 ms ticks.
	res["machine_cpu"] = t.busy.Seconds() / wall
	res["steal_cpu"] = t.steal.Seconds() / wall
	ours := t.user + t.sys + t.aux
	for _, d := range t.server {
		ours += d
	}
	res["other_cpu"] = (t.busy - ours).Seconds() / wall
}

// cpuMeter measures one window, from startCPU to record.
type cpuMeter struct {
	w     watched
	start cpuSample
}

func startCPU(w watched) *cpuMeter {
	return &cpuMeter{w: w, start: sampleCPU(w)}
}

func (m *cpuMeter) record(res result) {
	t := cpuTotals{w: m.w}
	t.add(m.start, sampleCPU(m.w))
	t.record(res)
}

// machineCPU is the time all CPUs spent busy (neither idle, waiting for I/O
// nor stolen), and the time stolen by the hypervisor for other guests while
// a CPU had work, from /proc/stat's "cpu" line.
func machineCPU() (busy, steal time.Duration) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0
	}
	var ticks [8]int64
	for i := range ticks {
		ticks[i], _ = strconv.ParseInt(fields[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	used := ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
	unit := time.Second / clockTicks
	return time.Duration(used) * unit, time.Duration(ticks[7]) * unit
}

// parsePids reads a comma-separated list of process ids ("" is none).
func parsePids(list string) ([]int, error) {
	var pids []int
	for _, field := range strings.Split(list, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		pid, err := strconv.Atoi(field)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("bad process id %q", field)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// selfCPU is this process's user and system time.
func selfCPU() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// processCPU is the user+system time of every thread of pid.
func processCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces; fields resume after its ')'.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}
