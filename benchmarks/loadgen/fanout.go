package main

// Fan-out: o.conns subscribers of one topic connect to o.path and one
// publisher to o.pubPath. Every message the publisher sends is published to
// the topic by the server, which delivers it to every subscriber (in every
// process sharing its broker). Each message is "fanout:<k>;" repeated and cut
// to o.size bytes, checked byte for byte on arrival.
//
// Three phases: warm-up (until a message reaches every subscriber: a worker's
// subscription at the broker may take a moment), latency (o.count messages
// one at a time, each timed from just before it is written until the last
// subscriber has it), and throughput (o.inflight messages outstanding, a new
// one written as soon as the oldest has reached everyone, for o.warmup, then
// o.duration measured: deliveries per second).
//
// -protocol ws: plain WebSocket messages. A subscriber's first message is
// "subscribed:<pid>" (the server process it landed on); a message sent by the
// publisher is published as it is, and arrives as it is.
//
// -protocol socketio: Engine.IO 4 / Socket.IO 5 packets over the WebSocket
// transport only (no polling, so no sticky sessions are needed): the open
// packet "0{...}", the namespace connection "40" answered "40{...}", then a
// subscriber emits "subscribe" and is answered with the event "subscribed"
// carrying the server's pid; the publisher emits "publish" with the payload,
// and subscribers receive the event "msg" with it. Engine.IO pings ("2") are
// answered ("3").

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
	fanoutWarmupWait  = time.Second
	fanoutWarmupLimit = 15 * time.Second
	fanoutWait        = 5 * time.Second
	// In the throughput phase a message that has not reached every subscriber
	// after this long counts as lost for those it missed.
	fanoutLossWait    = 2 * time.Second
	fanoutGap         = 10 * time.Millisecond
	fanoutMaxMessages = 1 << 16
)

func fanoutPayload(size, k int) []byte {
	tag := []byte(fmt.Sprintf("fanout:%d;", k))
	return bytes.Repeat(tag, size/len(tag)+1)[:size]
}

// fanoutNumber parses k out of a payload starting "fanout:<k>;".
func fanoutNumber(p []byte) (int, bool) {
	rest, ok := cutPrefix(p, "fanout:")
	if !ok {
		return 0, false
	}
	end := bytes.IndexByte(rest, ';')
	if end < 0 {
		return 0, false
	}
	k, err := strconv.Atoi(string(rest[:end]))
	return k, err == nil && k >= 0
}

// cutPrefix is bytes.CutPrefix, which Go 1.19 does not have.
func cutPrefix(p []byte, prefix string) ([]byte, bool) {
	if !bytes.HasPrefix(p, []byte(prefix)) {
		return p, false
	}
	return p[len(prefix):], true
}

// fanoutProtocol is how messages look on the wire.
type fanoutProtocol struct {
	socketio bool
}

var (
	sioPublishPrefix = []byte(`42["publish","`)
	sioMsgPrefix     = []byte(`42["msg","`)
	sioSuffix        = []byte(`"]`)
	sioSubscribed    = []byte(`42["subscribed",`)
)

// join performs what follows the WebSocket handshake; for a subscriber it
// returns the pid of the server process that serves it.
func (p fanoutProtocol) join(c *Conn, subscriber bool) (int, error) {
	_ = c.nc.SetDeadline(time.Now().Add(dialTimeout))
	defer c.nc.SetDeadline(time.Time{})
	if !p.socketio {
		if !subscriber {
			return 0, nil
		}
		m, err := c.ReadMessage()
		if err != nil {
			return 0, fmt.Errorf("waiting for subscribed:<pid>: %w", err)
		}
		rest, ok := cutPrefix(m.Payload, "subscribed:")
		pid, err := strconv.Atoi(string(rest))
		if !ok || err != nil {
			return 0, fmt.Errorf("expected subscribed:<pid>, got %.60q", m.Payload)
		}
		return pid, nil
	}
	if _, err := p.expect(c, []byte("0{")); err != nil {
		return 0, fmt.Errorf("Engine.IO open: %w", err)
	}
	if err := c.WriteMessage(opText, []byte("40")); err != nil {
		return 0, err
	}
	if _, err := p.expect(c, []byte("40{")); err != nil {
		return 0, fmt.Errorf("Socket.IO connect: %w", err)
	}
	if !subscriber {
		return 0, nil
	}
	if err := c.WriteMessage(opText, []byte(`42["subscribe"]`)); err != nil {
		return 0, err
	}
	rest, err := p.expect(c, sioSubscribed)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(string(bytes.TrimSuffix(rest, []byte("]"))))
	if err != nil {
		return 0, fmt.Errorf("bad subscribed event %.60q", rest)
	}
	return pid, nil
}

// expect reads messages, answering Engine.IO pings, until one that starts
// with prefix; it returns the rest of it.
func (p fanoutProtocol) expect(c *Conn, prefix []byte) ([]byte, error) {
	for {
		m, err := c.ReadMessage()
		if err != nil {
			return nil, err
		}
		if ok, err := p.control(c, m.Payload); err != nil || ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		if !bytes.HasPrefix(m.Payload, prefix) {
			return nil, fmt.Errorf("expected %q..., got %.60q", prefix, m.Payload)
		}
		return append([]byte(nil), m.Payload[len(prefix):]...), nil
	}
}

// control answers an Engine.IO ping; true if the message was one.
func (p fanoutProtocol) control(c *Conn, payload []byte) (bool, error) {
	if !p.socketio || len(payload) != 1 || payload[0] != '2' {
		return false, nil
	}
	// A separate buffer and a fixed key: another goroutine may be writing.
	return true, c.WriteRaw(appendFrame(nil, opText, []byte("3"), false, pongMaskKey))
}

// frame is what the publisher sends to publish payload.
func (p fanoutProtocol) frame(payload []byte) []byte {
	if !p.socketio {
		return payload
	}
	out := append(append([]byte(nil), sioPublishPrefix...), payload...)
	return append(out, sioSuffix...)
}

// unwrap returns the payload a delivered message carries.
func (p fanoutProtocol) unwrap(m []byte) ([]byte, bool) {
	if !p.socketio {
		return m, true
	}
	if !bytes.HasPrefix(m, sioMsgPrefix) || !bytes.HasSuffix(m, sioSuffix) {
		return nil, false
	}
	return m[len(sioMsgPrefix) : len(m)-len(sioSuffix)], true
}

// fanoutMessage tracks one published message.
type fanoutMessage struct {
	start    atomic.Int64 // UnixNano just before it was written
	received atomic.Int64
	last     atomic.Int64 // latest arrival, UnixNano
	all      chan struct{}
}

type fanoutState struct {
	size        int
	subscribers int64
	proto       fanoutProtocol
	msgs        []fanoutMessage
	next        atomic.Int64 // the next message's number
	deliveries  atomic.Int64
	reordered   atomic.Int64
	stopping    atomic.Bool
	run         *failure
}

func runFanout(o *options) (result, error) {
	if o.protocol != "ws" && o.protocol != "socketio" {
		return nil, fmt.Errorf("-protocol must be ws or socketio")
	}
	if o.size < len(fanoutPayload(0, fanoutMaxMessages)) {
		return nil, fmt.Errorf("-size must be at least %d", len(fanoutPayload(0, fanoutMaxMessages)))
	}
	st := &fanoutState{
		size:        o.size,
		subscribers: int64(o.conns),
		proto:       fanoutProtocol{socketio: o.protocol == "socketio"},
		msgs:        make([]fanoutMessage, fanoutMaxMessages),
		run:         newFailure(),
	}
	for i := range st.msgs {
		st.msgs[i].all = make(chan struct{})
	}

	subs := make([]*Conn, o.conns)
	pids := make([]int, o.conns)
	err := forEach(o.conns, dialConcurrency, func(i int) error {
		c, err := Dial(o.addr, o.path, false, dialTimeout)
		if err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		subs[i] = c
		if pids[i], err = st.proto.join(c, true); err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		return nil
	})
	defer abortAll(subs)
	if err != nil {
		return nil, err
	}
	pub, err := Dial(o.addr, o.pubPath, false, dialTimeout)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	defer pub.Abort()
	if _, err := st.proto.join(pub, false); err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}

	var readers sync.WaitGroup
	for i, c := range subs {
		readers.Add(1)
		go func(id int, c *Conn) {
			defer readers.Done()
			st.receive(id, c)
		}(i, c)
	}
	readers.Add(1)
	go func() {
		defer readers.Done()
		st.drainPublisher(pub)
	}()

	res := result{"subscribers": o.conns, "subscribers_by_pid": countPids(pids), "mismatches": 0}
	if err := st.warmUp(pub, o.warmupCount); err != nil {
		return nil, err
	}
	if err := st.latency(pub, o.count, res); err != nil {
		return nil, err
	}
	if err := st.throughput(pub, o, res); err != nil {
		return nil, err
	}

	// Each reader returns when the server's close frame arrives.
	st.stopping.Store(true)
	for _, c := range append([]*Conn{pub}, subs...) {
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
	if st.run.err != nil {
		return nil, st.run.err
	}
	res["reordered"] = st.reordered.Load()
	return res, nil
}

func countPids(pids []int) map[string]int {
	out := map[string]int{}
	for _, pid := range pids {
		out[strconv.Itoa(pid)]++
	}
	return out
}

// publish writes the next message; it returns its number.
func (st *fanoutState) publish(pub *Conn) (int, error) {
	k := int(st.next.Load())
	if k >= len(st.msgs) {
		return 0, fmt.Errorf("more than %d messages", len(st.msgs))
	}
	st.next.Store(int64(k + 1)) // only the one publishing goroutine writes it
	st.msgs[k].start.Store(time.Now().UnixNano())
	if err := pub.WriteMessage(opText, st.proto.frame(fanoutPayload(st.size, k))); err != nil {
		return 0, fmt.Errorf("publisher: %w", err)
	}
	return k, nil
}

// wait waits until message k has reached every subscriber (true), for at
// most d (false), or the run failed.
func (st *fanoutState) wait(k int, d time.Duration) (bool, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-st.msgs[k].all:
		return true, nil
	case <-st.run.done:
		return false, st.run.err
	case <-timer.C:
		return false, nil
	}
}

func (st *fanoutState) elapsed(k int) time.Duration {
	m := &st.msgs[k]
	return time.Duration(m.last.Load() - m.start.Load())
}

// warmUp publishes until at least count messages were sent and the last one
// reached every subscriber.
func (st *fanoutState) warmUp(pub *Conn, count int) error {
	deadline := time.Now().Add(fanoutWarmupLimit)
	for i := 0; ; i++ {
		k, err := st.publish(pub)
		if err != nil {
			return err
		}
		full, err := st.wait(k, fanoutWarmupWait)
		if err != nil {
			return err
		}
		if full && i+1 >= count {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: after %v, message %d reached %d of %d subscribers",
				fanoutWarmupLimit, k, st.msgs[k].received.Load(), st.subscribers)
		}
		time.Sleep(fanoutGap)
	}
}

// latency publishes count messages one at a time.
func (st *fanoutState) latency(pub *Conn, count int, res result) error {
	samples := make([]time.Duration, 0, count)
	for i := 0; i < count; i++ {
		k, err := st.publish(pub)
		if err != nil {
			return err
		}
		full, err := st.wait(k, fanoutWait)
		if err != nil {
			return err
		}
		if !full {
			return fmt.Errorf("message %d: %d of %d subscribers received it within %v",
				k, st.msgs[k].received.Load(), st.subscribers, fanoutWait)
		}
		samples = append(samples, st.elapsed(k))
		time.Sleep(fanoutGap)
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	res["latency_messages"] = len(samples)
	res["p50_ms"] = ms(quantile(samples, 0.5))
	res["p99_ms"] = ms(quantile(samples, 0.99))
	res["min_ms"] = ms(samples[0])
	res["max_ms"] = ms(samples[len(samples)-1])
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// throughput keeps o.inflight messages outstanding: o.warmup, then
// o.duration measured.
func (st *fanoutState) throughput(pub *Conn, o *options, res result) error {
	first := int(st.next.Load())
	var stop atomic.Bool
	var lost atomic.Int64
	done := make(chan error, 1)
	go func() {
		for !stop.Load() {
			if oldest := int(st.next.Load()) - o.inflight; oldest >= first {
				full, err := st.wait(oldest, fanoutLossWait)
				if err != nil {
					done <- err
					return
				}
				if !full {
					lost.Add(st.subscribers - st.msgs[oldest].received.Load())
				}
			}
			if _, err := st.publish(pub); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := st.run.sleep(o.warmup); err != nil {
		return err
	}
	n0, k0, t0 := st.deliveries.Load(), int(st.next.Load()), time.Now()
	cpu := startCPU(o.procs)
	if err := st.run.sleep(o.duration); err != nil {
		return err
	}
	n1, k1, t1 := st.deliveries.Load(), int(st.next.Load()), time.Now()
	cpu.record(res)
	stop.Store(true)
	if err := <-done; err != nil {
		return err
	}
	// Wait for what is still outstanding; what does not arrive is lost.
	last := int(st.next.Load())
	for k := last - o.inflight; k < last; k++ {
		if k < first {
			continue
		}
		full, err := st.wait(k, fanoutLossWait)
		if err != nil {
			return err
		}
		if !full {
			lost.Add(st.subscribers - st.msgs[k].received.Load())
		}
	}
	var loaded []time.Duration
	for k := k0; k < k1; k++ {
		if st.msgs[k].received.Load() == st.subscribers {
			loaded = append(loaded, st.elapsed(k))
		}
	}
	sort.Slice(loaded, func(i, j int) bool { return loaded[i] < loaded[j] })
	seconds := t1.Sub(t0).Seconds()
	res["inflight"] = o.inflight
	res["seconds"] = seconds
	res["deliveries"] = n1 - n0
	res["deliveries_per_s"] = float64(n1-n0) / seconds
	res["published_per_s"] = float64(k1-k0) / seconds
	res["lost_deliveries"] = lost.Load()
	if len(loaded) > 0 {
		res["loaded_p50_ms"] = ms(quantile(loaded, 0.5))
	}
	return nil
}

// receive reads one subscriber's deliveries and checks each byte for byte.
func (st *fanoutState) receive(id int, c *Conn) {
	last := -1
	for {
		m, err := c.ReadMessage()
		now := time.Now().UnixNano()
		if err != nil {
			if !st.stopping.Load() {
				st.run.set(fmt.Errorf("subscriber %d: %w", id, err))
			}
			return
		}
		if ok, err := st.proto.control(c, m.Payload); ok || err != nil {
			if err != nil && !st.stopping.Load() {
				st.run.set(fmt.Errorf("subscriber %d: %w", id, err))
				return
			}
			continue
		}
		payload, ok := st.proto.unwrap(m.Payload)
		k, isNumber := fanoutNumber(payload)
		if m.Opcode != opText || !ok || !isNumber || k >= int(st.next.Load()) {
			st.run.set(fmt.Errorf("subscriber %d: unexpected message %.60q (1 mismatch)", id, m.Payload))
			return
		}
		if !bytes.Equal(payload, fanoutPayload(st.size, k)) {
			st.run.set(fmt.Errorf("subscriber %d: message %d differs from what was published (1 mismatch)", id, k))
			return
		}
		if k <= last {
			st.reordered.Add(1) // a duplicate, or out of order
		} else {
			last = k
		}
		msg := &st.msgs[k]
		for {
			prev := msg.last.Load()
			if now <= prev || msg.last.CompareAndSwap(prev, now) {
				break
			}
		}
		st.deliveries.Add(1)
		if msg.received.Add(1) == st.subscribers {
			close(msg.all)
		}
	}
}

// drainPublisher reads the publisher's connection: Engine.IO pings, and the
// close frame at the end.
func (st *fanoutState) drainPublisher(c *Conn) {
	for {
		m, err := c.ReadMessage()
		if err != nil {
			if !st.stopping.Load() {
				st.run.set(fmt.Errorf("publisher: %w", err))
			}
			return
		}
		if _, err := st.proto.control(c, m.Payload); err != nil && !st.stopping.Load() {
			st.run.set(fmt.Errorf("publisher: %w", err))
			return
		}
	}
}
