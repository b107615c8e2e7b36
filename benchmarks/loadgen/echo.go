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
	c, err := Dial(o.addr, o.path, o.deflate, dialTimeout)
	if err != nil {
		return nil, err
	}
	defer c.Abort()
	samples := make([]time.Duration, 0, o.count)
	var buf []byte
	var cpu *cpuMeter
	for i := 0; i < o.warmupCount+o.count; i++ {
		if i == o.warmupCount {
			cpu = startCPU(o.pid)
		}
		buf = src.fill(buf, uint64(i))
		start := time.Now()
		if err := c.WriteMessage(src.opcode, buf); err != nil {
			return nil, err
		}
		m, err := c.ReadMessage()
		elapsed := time.Since(start)
		if err != nil {
			return nil, fmt.Errorf("round trip %d: %w", i, err)
		}
		if err := expectEqual(m, src.opcode, buf); err != nil {
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
		pending := make(chan []byte, o.inflight)
		readers.Add(1)
		go pump(c, src, uint64(i)<<40, o.inflight, pending, &stop, run)
		go func(id int, c *Conn) {
			defer readers.Done()
			verifyEchoes(id, c, src.opcode, pending, &counters, run)
		}(i, c)
	}

	if err := run.sleep(o.warmup); err != nil {
		return nil, err
	}
	n0, w0, t0 := counters.received.Load(), counters.wireBytes.Load(), time.Now()
	cpu := startCPU(o.pid)
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

// pump keeps up to inflight messages outstanding on c: it blocks on pending
// (whose capacity is inflight), and coalesces as many frames as may be sent
// right now into one write. Each message is built in one of inflight+2 slots,
// so the one the reader is comparing against is never overwritten.
func pump(c *Conn, src *payloadSource, seq uint64, inflight int, pending chan<- []byte, stop *atomic.Bool, run *failure) {
	defer close(pending)
	slots := make([][]byte, inflight+2)
	var batch []byte
	for !stop.Load() {
		batch = batch[:0]
		for {
			slot := seq % uint64(len(slots))
			p := src.fill(slots[slot], seq)
			slots[slot] = p
			if len(batch) == 0 {
				select {
				case pending <- p:
				case <-run.done:
					return
				}
			} else {
				pending <- p // there is room: checked below, and only this goroutine sends
			}
			batch = c.AppendMessage(batch, src.opcode, p)
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

// verifyEchoes reads one echo per message pump sent and compares it byte for
// byte with that message.
func verifyEchoes(id int, c *Conn, opcode byte, pending <-chan []byte, counters *echoCounters, run *failure) {
	for want := range pending {
		m, err := c.ReadMessage()
		if err != nil {
			run.set(fmt.Errorf("connection %d: %w", id, err))
			return
		}
		if err := expectEqual(m, opcode, want); err != nil {
			n := counters.mismatches.Add(1)
			run.set(fmt.Errorf("connection %d: %w (%d mismatches)", id, err, n))
			return
		}
		counters.received.Add(1)
		counters.wireBytes.Add(int64(m.WireSize))
		if m.Compressed {
			counters.compressed.Add(1)
		}
	}
}
