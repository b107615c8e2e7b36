// Command loadgen is the benchmark's WebSocket load generator.
//
// Usage: loadgen SCENARIO [flags]; SCENARIO is latency, throughput,
// handshakes, idle, broadcast or fanout. It prints one JSON object with the results to
// stdout, and exits 1 with a message on stderr when anything went wrong: a
// failed handshake, an unexpected close, or an echo that differs from what was
// sent by a single byte.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

const (
	dialTimeout     = 10 * time.Second
	closeTimeout    = 5 * time.Second
	drainTimeout    = 20 * time.Second
	dialConcurrency = 50
)

type options struct {
	addr        string
	path        string
	deflate     bool
	kind        string
	size        int
	conns       int
	inflight    int
	concurrency int
	count       int
	warmupCount int
	warmup      time.Duration
	duration    time.Duration
	pid         int     // the first of -pid: its RSS is read (idle)
	procs       watched // -pid and -aux-pid: their CPU is read
	message     bool
	pubPath     string // fanout: the publisher's path
	protocol    string // fanout: "ws" (plain WebSocket messages) or "socketio"
}

type result map[string]any

var scenarios = map[string]func(*options) (result, error){
	"latency":    runLatency,
	"throughput": runThroughput,
	"handshakes": runHandshakes,
	"idle":       runIdle,
	"broadcast":  runBroadcast,
	"fanout":     runFanout,
}

func main() {
	if len(os.Args) < 2 || scenarios[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: loadgen latency|throughput|handshakes|idle|broadcast|fanout [flags]")
		os.Exit(2)
	}
	name := os.Args[1]
	o := &options{}
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8000", "server address (loopback only)")
	fs.StringVar(&o.path, "path", "/", "request path")
	fs.BoolVar(&o.deflate, "deflate", false, "offer permessage-deflate and require it")
	fs.StringVar(&o.kind, "kind", "text", "payload kind: text, binary or json")
	fs.IntVar(&o.size, "size", 32, "payload size in bytes")
	fs.IntVar(&o.conns, "conns", 1, "connections")
	fs.IntVar(&o.inflight, "inflight", 1, "messages in flight per connection (throughput)")
	fs.IntVar(&o.concurrency, "concurrency", 50, "concurrent handshakes (handshakes)")
	fs.IntVar(&o.count, "count", 10000, "measured round trips (latency) or broadcasts (broadcast)")
	fs.IntVar(&o.warmupCount, "warmup-count", 1000, "unmeasured round trips or broadcasts first")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "unmeasured time first (throughput, handshakes)")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "measured time (throughput, handshakes)")
	pids := fs.String("pid", "", "server processes, comma-separated: CPU use is read from /proc (summed), "+
		"and the first one's RSS (idle)")
	auxPids := fs.String("aux-pid", "", "other processes whose CPU use is read (a broker), comma-separated")
	fs.BoolVar(&o.message, "message", false, "echo one message on every connection, then read RSS again (idle)")
	fs.StringVar(&o.pubPath, "pub-path", "/pub", "fanout: the publisher's path")
	fs.StringVar(&o.protocol, "protocol", "ws", "fanout: ws (plain messages) or socketio (Engine.IO 4 / Socket.IO 5 packets)")
	tlsCA := fs.String("tls-ca", "", "connect over TLS (wss://), trusting the CA certificates in this PEM file")
	tlsInsecure := fs.Bool("tls-insecure", false, "connect over TLS (wss://) without verifying the server's certificate")
	_ = fs.Parse(os.Args[2:])
	var err error
	if o.procs.server, err = parsePids(*pids); err != nil {
		fail(err)
	}
	if o.procs.aux, err = parsePids(*auxPids); err != nil {
		fail(err)
	}
	if len(o.procs.server) > 0 {
		o.pid = o.procs.server[0]
	}
	if tlsConfig, err = newTLSConfig(*tlsCA, *tlsInsecure); err != nil {
		fail(err)
	}

	if err := checkLoopback(o.addr); err != nil {
		fail(err)
	}
	res, err := scenarios[name](o)
	if err != nil {
		fail(err)
	}
	res["scenario"] = name
	if tlsConfig != nil {
		res["tls"] = tlsUsed.describe()
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(1)
}

// checkLoopback refuses any target that is not on this machine.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to load %s: only loopback addresses are allowed", addr)
	}
	return nil
}

// failure records the first error of a run and tells every goroutine to stop.
type failure struct {
	once sync.Once
	err  error
	done chan struct{}
}

func newFailure() *failure { return &failure{done: make(chan struct{})} }

func (f *failure) set(err error) {
	f.once.Do(func() {
		f.err = err
		close(f.done)
	})
}

// sleep waits d, or less if the run failed; it returns the run's error.
func (f *failure) sleep(d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-f.done:
		return f.err
	}
}
