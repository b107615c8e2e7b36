package main

// Connection scenarios: handshake rate, and the server's memory per idle
// connection.

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// forEach runs fn(i) for i in [0, n) on at most workers goroutines and returns
// the first error.
func forEach(n, workers int, fn func(i int) error) error {
	if workers > n {
		workers = n
	}
	var next atomic.Int64
	next.Store(-1)
	run := newFailure()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1))
				if i >= n {
					return
				}
				select {
				case <-run.done:
					return
				default:
				}
				if err := fn(i); err != nil {
					run.set(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return run.err
}

// dialAll opens n connections, dialConcurrency at a time.
func dialAll(addr, path string, n int, deflate bool) ([]*Conn, error) {
	conns := make([]*Conn, n)
	err := forEach(n, dialConcurrency, func(i int) error {
		c, err := Dial(addr, path, deflate, dialTimeout)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns[i] = c
		return nil
	})
	if err != nil {
		abortAll(conns)
		return nil, err
	}
	return conns, nil
}

// closeAll performs the closing handshake on every connection.
func closeAll(conns []*Conn) error {
	return forEach(len(conns), 100, func(i int) error {
		if err := conns[i].CloseHandshake(closeTimeout); err != nil {
			return fmt.Errorf("closing connection %d: %w", i, err)
		}
		return nil
	})
}

func abortAll(conns []*Conn) {
	for _, c := range conns {
		if c != nil {
			c.Abort()
		}
	}
}

// runHandshakes measures complete connection lifecycles per second: TCP
// connect, upgrade, closing handshake, TCP close; o.concurrency at a time.
func runHandshakes(o *options) (result, error) {
	var completed atomic.Int64
	var stop atomic.Bool
	run := newFailure()
	var wg sync.WaitGroup
	for w := 0; w < o.concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				c, err := Dial(o.addr, o.path, o.deflate, dialTimeout)
				if err != nil {
					run.set(err)
					return
				}
				if err := c.CloseHandshake(closeTimeout); err != nil {
					run.set(err)
					return
				}
				completed.Add(1)
			}
		}()
	}
	if err := run.sleep(o.warmup); err != nil {
		return nil, err
	}
	n0, t0 := completed.Load(), time.Now()
	cpu := startCPU(o.procs)
	if err := run.sleep(o.duration); err != nil {
		return nil, err
	}
	n1, t1 := completed.Load(), time.Now()
	res := result{}
	cpu.record(res)
	stop.Store(true)
	wg.Wait()
	if run.err != nil {
		return nil, run.err
	}
	seconds := t1.Sub(t0).Seconds()
	res["handshakes"] = n1 - n0
	res["seconds"] = seconds
	res["handshakes_s"] = float64(n1-n0) / seconds
	return res, nil
}

// runIdle reads the server's RSS with no client connected (after one warm-up
// connection), with o.conns idle connections open, and with -message again
// after one message was echoed on every connection.
func runIdle(o *options) (result, error) {
	if o.pid <= 0 {
		return nil, fmt.Errorf("idle needs -pid")
	}
	src, err := newPayloadSource(o.kind, o.size, 3)
	if err != nil {
		return nil, err
	}
	if o.deflate {
		src.precompress()
	}
	exchange := func(c *Conn, seq uint64) error {
		if err := c.WriteRaw(c.AppendPayload(nil, src, seq)); err != nil {
			return err
		}
		m, err := c.ReadMessage()
		if err != nil {
			return err
		}
		if o.deflate && !m.Compressed {
			return fmt.Errorf("the echo of a %d-byte message came back uncompressed", src.size)
		}
		return expectPayload(m, src, seq)
	}

	// Warm up: imports, first-use allocations, zlib if compression is on.
	warm, err := Dial(o.addr, o.path, o.deflate, dialTimeout)
	if err != nil {
		return nil, err
	}
	if err := exchange(warm, 0); err != nil {
		warm.Abort()
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	if err := warm.CloseHandshake(closeTimeout); err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond)
	before, err := rss(o.pid)
	if err != nil {
		return nil, err
	}

	conns, err := dialAll(o.addr, o.path, o.conns, o.deflate)
	if err != nil {
		return nil, err
	}
	defer abortAll(conns)
	afterHandshake, err := settledRSS(o.pid)
	if err != nil {
		return nil, err
	}
	res := result{
		"conns":               o.conns,
		"rss_before":          before,
		"rss_after_handshake": afterHandshake,
		"bytes_per_conn":      float64(afterHandshake-before) / float64(o.conns),
		"extensions":          conns[0].Extensions,
		"mismatches":          0,
	}
	if o.message {
		err := forEach(len(conns), 100, func(i int) error {
			if err := exchange(conns[i], uint64(i+1)); err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		afterMessage, err := settledRSS(o.pid)
		if err != nil {
			return nil, err
		}
		res["rss_after_message"] = afterMessage
		res["bytes_per_conn_after_message"] = float64(afterMessage-before) / float64(o.conns)
	}
	if err := closeAll(conns); err != nil {
		return nil, err
	}
	return res, nil
}

// settledRSS waits for the server to finish its work: RSS read every 200 ms
// until two reads agree within 0.5%, at most 3 s.
func settledRSS(pid int) (int64, error) {
	time.Sleep(300 * time.Millisecond)
	last, err := rss(pid)
	if err != nil {
		return 0, err
	}
	for i := 0; i < 15; i++ {
		time.Sleep(200 * time.Millisecond)
		now, err := rss(pid)
		if err != nil {
			return 0, err
		}
		diff := now - last
		if diff < 0 {
			diff = -diff
		}
		last = now
		if float64(diff) <= 0.005*float64(now) {
			break
		}
	}
	return last, nil
}

// rss is the VmRSS of a process, in bytes.
func rss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "VmRSS:") {
			field := strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
			kb, err := strconv.ParseInt(strings.TrimSuffix(field, " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
