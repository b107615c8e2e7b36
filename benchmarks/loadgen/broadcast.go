package main

// Broadcast: o.conns clients connect to o.path; the first one sends the text
// "broadcast:<size>:<k>;" and the server sends, to every client connected to
// that path (the sender included), a text message made of that trigger
// repeated and cut to <size> bytes. The time from just before the trigger is
// written until the last client has received the message is one sample.

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// Warm-up broadcasts may miss clients whose server-side handler has not
	// registered yet; they wait this long at most.
	warmupWait    = time.Second
	broadcastWait = 10 * time.Second
	broadcastGap  = 20 * time.Millisecond
)

func broadcastTrigger(size, k int) []byte {
	return []byte(fmt.Sprintf("broadcast:%d:%d;", size, k))
}

func broadcastPayload(size, k int) []byte {
	trigger := broadcastTrigger(size, k)
	return bytes.Repeat(trigger, size/len(trigger)+1)[:size]
}

// broadcastRound tracks who received broadcast k.
type broadcastRound struct {
	want     []byte
	received atomic.Int64
	last     atomic.Int64 // latest arrival, UnixNano
	all      chan struct{}
}

func runBroadcast(o *options) (result, error) {
	total := o.warmupCount + o.count
	if o.size < len(broadcastTrigger(o.size, total)) {
		return nil, fmt.Errorf("-size must be at least %d", len(broadcastTrigger(o.size, total)))
	}
	rounds := make([]*broadcastRound, total)
	for k := range rounds {
		rounds[k] = &broadcastRound{want: broadcastPayload(o.size, k), all: make(chan struct{})}
	}
	conns, err := dialAll(o.addr, o.path, o.conns, false)
	if err != nil {
		return nil, err
	}
	defer abortAll(conns)

	run := newFailure()
	var stopping atomic.Bool
	var readers sync.WaitGroup
	for i, c := range conns {
		readers.Add(1)
		go func(id int, c *Conn) {
			defer readers.Done()
			receiveBroadcasts(id, c, rounds, len(conns), &stopping, run)
		}(i, c)
	}

	time.Sleep(200 * time.Millisecond)
	var samples []time.Duration
	cpu := cpuTotals{w: o.procs}
	for k := 0; k < total; k++ {
		r := rounds[k]
		before := sampleCPU(o.procs)
		start := time.Now()
		if err := conns[0].WriteMessage(opText, broadcastTrigger(o.size, k)); err != nil {
			return nil, err
		}
		wait := broadcastWait
		if k < o.warmupCount {
			wait = warmupWait
		}
		select {
		case <-r.all:
		case <-run.done:
			return nil, run.err
		case <-time.After(wait):
			if k >= o.warmupCount {
				return nil, fmt.Errorf("broadcast %d: %d of %d clients received it within %v",
					k, r.received.Load(), len(conns), wait)
			}
		}
		if k >= o.warmupCount {
			samples = append(samples, time.Duration(r.last.Load()-start.UnixNano()))
			cpu.add(before, sampleCPU(o.procs))
		}
		time.Sleep(broadcastGap)
	}
	// Each reader returns when the server's close frame arrives.
	stopping.Store(true)
	for _, c := range conns {
		if err := c.SendClose(); err != nil {
			return nil, err
		}
	}
	closed := make(chan struct{})
	go func() { readers.Wait(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(closeTimeout):
		return nil, fmt.Errorf("the server did not close every connection within %v", closeTimeout)
	}

	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
	list := make([]float64, len(samples))
	for i, s := range samples {
		list[i] = ms(s)
	}
	res := result{
		"clients":    len(conns),
		"broadcasts": len(samples),
		"median_ms":  ms(quantile(samples, 0.5)),
		"min_ms":     ms(samples[0]),
		"max_ms":     ms(samples[len(samples)-1]),
		"samples_ms": list,
		"mismatches": 0,
	}
	// Indicative only: the server's CPU time is counted in 10 ms ticks.
	cpu.record(res)
	return res, nil
}

// receiveBroadcasts reads broadcasts on one connection, works out from the
// payload which broadcast it is, and checks it byte for byte.
func receiveBroadcasts(id int, c *Conn, rounds []*broadcastRound, clients int, stopping *atomic.Bool, run *failure) {
	for {
		m, err := c.ReadMessage()
		now := time.Now().UnixNano()
		if err != nil {
			if !stopping.Load() {
				run.set(fmt.Errorf("connection %d: %w", id, err))
			}
			return
		}
		k, ok := broadcastNumber(m.Payload)
		if !ok || k >= len(rounds) {
			run.set(fmt.Errorf("connection %d: unexpected message %.40q (1 mismatch)", id, m.Payload))
			return
		}
		r := rounds[k]
		if err := expectEqual(m, opText, r.want); err != nil {
			run.set(fmt.Errorf("connection %d, broadcast %d: %w (1 mismatch)", id, k, err))
			return
		}
		for {
			last := r.last.Load()
			if now <= last || r.last.CompareAndSwap(last, now) {
				break
			}
		}
		if r.received.Add(1) == int64(clients) {
			close(r.all)
		}
	}
}

// broadcastNumber parses k out of a payload starting "broadcast:<size>:<k>;".
func broadcastNumber(p []byte) (int, bool) {
	end := bytes.IndexByte(p, ';')
	if end < 0 || !bytes.HasPrefix(p, []byte("broadcast:")) {
		return 0, false
	}
	fields := bytes.Split(p[:end], []byte(":"))
	if len(fields) != 3 {
		return 0, false
	}
	k, err := strconv.Atoi(string(fields[2]))
	return k, err == nil
}
