package main

// CPU use over measured windows, as a fraction of one core: the load
// generator's own (user and system) and the server's.

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

// cpuSample is a point in time with the CPU time used so far.
type cpuSample struct {
	wall      time.Time
	user, sys time.Duration // this process
	server    time.Duration // the server process, all threads
}

func sampleCPU(pid int) cpuSample {
	s := cpuSample{wall: time.Now()}
	s.user, s.sys = selfCPU()
	s.server, _ = processCPU(pid)
	return s
}

// cpuTotals adds up the CPU time of one or more windows.
type cpuTotals struct {
	pid                     int
	wall, user, sys, server time.Duration
}

func (t *cpuTotals) add(from, to cpuSample) {
	t.wall += to.wall.Sub(from.wall)
	t.user += to.user - from.user
	t.sys += to.sys - from.sys
	t.server += to.server - from.server
}

// record adds client_cpu, its user and system parts, and server_cpu (when
// the server's pid is known) to res.
func (t *cpuTotals) record(res result) {
	wall := t.wall.Seconds()
	if wall <= 0 {
		return
	}
	res["client_cpu"] = (t.user + t.sys).Seconds() / wall
	res["client_user_cpu"] = t.user.Seconds() / wall
	res["client_sys_cpu"] = t.sys.Seconds() / wall
	if t.pid > 0 {
		res["server_cpu"] = t.server.Seconds() / wall
	}
}

// cpuMeter measures one window, from startCPU to record.
type cpuMeter struct {
	pid   int
	start cpuSample
}

func startCPU(pid int) *cpuMeter {
	return &cpuMeter{pid: pid, start: sampleCPU(pid)}
}

func (m *cpuMeter) record(res result) {
	t := cpuTotals{pid: m.pid}
	t.add(m.start, sampleCPU(m.pid))
	t.record(res)
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
