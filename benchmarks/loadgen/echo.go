package main

// Echo scenarios: latency (one message in flight, every round trip timed) and
// throughput (many connections, a window of messages in flight on each).

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// maxBatch bounds how many bytes of frames the throughput writer coalesces
// into one write() when several messages may be sent at once.
const maxBatch = 256 * 1024

func runLatency(o *options) (result, error) {
	src, err := newPayloadSource(o.kind, o.size, 1)
	if err != nil {
		return nil, err
	}
	if o.deflate {
		src.precompress()
	}
	c, err := Dial(o.addr, o.path, o.deflate, dialTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Abort()
	samples := make([]time.Duration, 0, o.count)
	var frame []byte
	var cpu *cpuMeter
	for i := 0; i < o.warmupCount+o.count; i++ {
		if i == o.warmupCount {
			cpu = startCPU(o.procs)
		}
		frame = c.AppendPayload(frame[:0], src, uint64(i))
		start := time.Now()
		if err := c.WriteRaw(frame); err != nil {
			return nil, err
		}
		m, err := c.ReadMessage()
		elapsed := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("round trip %d: %w", i, err)
		}
		if err := expectPayload(m, src, uint64(i)); err != nil {
			return nil, fmt.Errorf("round trip %d: %w (1 mismatch)", i, err)
		}
		if i >= o.warmupCount {
			samples = append(samples, elapsed)
		}
	}
	res := result{}
	cpu.record(res)
	if err := c.CloseHandshake(closeTimeout); err != nil {
		return nil, err
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	var total time.Duration
	for _, s := range samples {
		total += s
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	res["count"] = len(samples)
	res["p50_us"] = us(quantile(samples, 0.50))
	res["p99_us"] = us(quantile(samples, 0.99))
	res["min_us"] = us(samples[0])
	res["max_us"] = us(samples[len(samples)-1])
	res["mean_us"] = us(total / time.Duration(len(samples)))
	res["mismatches"] = 0
	res["extensions"] = c.Extensions
	return res, nil
}

// quantile of sorted samples (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}

type echoCounters struct {
	received   atomic.Int64
	wireBytes  atomic.Int64
	compressed atomic.Int64
	mismatches atomic.Int64
}

func runThroughput(o *options) (result, error) {
	src, err := newPayloadSource(o.kind, o.size, 2)
	if err != nil {
		return nil, err
	}
	if o.deflate {
		src.precompress()
	}
	conns, err := dialAll(o.addr, o.path, o.conns, o.deflate)
	if err != nil {
		return nil, err
	}
	defer abortAll(conns)

	var counters echoCounters
	var stop atomic.Bool
	run := newFailure()
	var readers sync.WaitGroup
	for i, c := range conns {
		readers.Add(1)
		if o.inflight == 1 {
			// One goroutine per connection: no hand-off between a writer
			// and a reader for every message.
			go func(id int, c *Conn) {
				defer readers.Done()
				pingPong(id, c, src, uint64(id)<<40, &counters, &stop, run)
			}(i, c)
			continue
		}
		pending := make(chan uint64, o.inflight)
		go pump(c, src, uint64(i)<<40, pending, &stop, run)
		go func(id int, c *Conn) {
			defer readers.Done()
			verifyEchoes(id, c, src, pending, &counters, run)
		}(i, c)
	}

	if err := run.sleep(o.warmup); err != nil {
		return nil, err
	}
	n0, w0, t0 := counters.received.Load(), counters.wireBytes.Load(), time.Now()
	cpu := startCPU(o.procs)
	if err := run.sleep(o.duration); err != nil {
		return nil, err
	}
	n1, w1, t1 := counters.received.Load(), counters.wireBytes.Load(), time.Now()
	stop.Store(true)
	res := result{}
	cpu.record(res)

	drained := make(chan struct{})
	go func() { readers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-run.done:
		return nil, run.err
	case <-time.After(drainTimeout):
		return nil, fmt.Errorf("echoes still missing %v after the run", drainTimeout)
	}
	if run.err != nil {
		return nil, run.err
	}
	if err := closeAll(conns); err != nil {
		return nil, err
	}

	seconds := t1.Sub(t0).Seconds()
	messages := n1 - n0
	res["messages"] = messages
	res["seconds"] = seconds
	res["msgs_per_s"] = float64(messages) / seconds
	res["mb_per_s"] = float64(messages) * float64(o.size) / seconds / 1e6
	res["mismatches"] = counters.mismatches.Load()
	res["total"] = counters.received.Load()
	res["extensions"] = conns[0].Extensions
	if messages > 0 {
		res["wire_bytes_per_msg"] = float64(w1-w0) / float64(messages)
	}
	if total := counters.received.Load(); total > 0 {
		res["compressed_fraction"] = float64(counters.compressed.Load()) / float64(total)
	}
	return res, nil
}

// pump keeps up to cap(pending) messages outstanding on c: it blocks on
// pending, which holds the sequence numbers of the messages in flight, and
// coalesces as many frames as may be sent right now into one write.
func pump(c *Conn, src *payloadSource, seq uint64, pending chan<- uint64, stop *atomic.Bool, run *failure) {
	defer close(pending)
	var batch []byte
	for !stop.Load() {
		batch = batch[:0]
		for {
			if len(batch) == 0 {
				select {
				case pending <- seq:
				case <-run.done:
					return
				}
			} else {
				pending <- seq // there is room: checked below, and only this goroutine sends
			}
			batch = c.AppendPayload(batch, src, seq)
			seq++
			if len(batch) >= maxBatch || len(pending) == cap(pending) || stop.Load() {
				break
			}
		}
		if err := c.WriteRaw(batch); err != nil {
			run.set(fmt.Errorf("writing: %w", err))
			return
		}
	}
}

// pingPong sends one message, waits for its echo and checks it, until stop.
func pingPong(id int, c *Conn, src *payloadSource, seq uint64, counters *echoCounters, stop *atomic.Bool, run *failure) {
	var frame []byte
	for ; !stop.Load(); seq++ {
		frame = c.AppendPayload(frame[:0], src, seq)
		if err := c.WriteRaw(frame); err != nil {
			run.set(fmt.Errorf("connection %d: writing: %w", id, err))
			return
		}
		if !checkEcho(id, c, src, seq, counters, run) {
			return
		}
	}
}

// verifyEchoes reads one echo per message pump sent and compares it byte for
// byte with that message.
func verifyEchoes(id int, c *Conn, src *payloadSource, pending <-chan uint64, counters *echoCounters, run *failure) {
	for seq := range pending {
		if !checkEcho(id, c, src, seq, counters, run) {
			return
		}
	}
}

// checkEcho reads the next message and compares it with message seq; false
// (and the run failed) if it is not the same.
func checkEcho(id int, c *Conn, src *payloadSource, seq uint64, counters *echoCounters, run *failure) bool {
	m, err := c.ReadMessage()
	if err != nil {
		run.set(fmt.Errorf("connection %d: %w", id, err))
		return false
	}
	if err := expectPayload(m, src, seq); err != nil {
		n := counters.mismatches.Add(1)
		run.set(fmt.Errorf("connection %d: %w (%d mismatches)", id, err, n))
		return false
	}
	counters.received.Add(1)
	counters.wireBytes.Add(int64(m.WireSize))
	if m.Compressed {
		counters.compressed.Add(1)
	}
	return true
}
