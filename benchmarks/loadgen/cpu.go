package main

// CPU use over a measurement window, as a fraction of one core: the load
// generator's own (to show it was not the bottleneck) and the server's.

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

type cpuMeter struct {
	pid    int
	wall   time.Time
	self   time.Duration
	server time.Duration
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid, wall: time.Now(), self: selfCPU()}
	m.server, _ = processCPU(pid)
	return m
}

// record adds client_cpu (and server_cpu when a pid was given) to res.
func (m *cpuMeter) record(res result) {
	wall := time.Since(m.wall).Seconds()
	res["client_cpu"] = (selfCPU() - m.self).Seconds() / wall
	if m.pid > 0 {
		if server, err := processCPU(m.pid); err == nil {
			res["server_cpu"] = (server - m.server).Seconds() / wall
		}
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
