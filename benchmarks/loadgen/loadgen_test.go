package main

import (
	"bytes"
	"compress/flate"
	"encoding/json"
	"math/rand"
	"testing"
)

func TestMaskCopyMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for n := 0; n < 200; n++ {
		data := make([]byte, n)
		rng.Read(data)
		key := rng.Uint32()
		got := make([]byte, n)
		maskCopy(got, data, key)
		var k [4]byte
		k[0], k[1], k[2], k[3] = byte(key), byte(key>>8), byte(key>>16), byte(key>>24)
		for i := range data {
			if got[i] != data[i]^k[i%4] {
				t.Fatalf("length %d: byte %d differs", n, i)
			}
		}
	}
}

// A stream compressed with context takeover (as a server sends it) inflates
// message by message, with and without server_no_context_takeover.
func TestInflateWithAndWithoutContextTakeover(t *testing.T) {
	for _, takeover := range []bool{true, false} {
		header := "permessage-deflate"
		if !takeover {
			header += "; server_no_context_takeover"
		}
		receiver, err := negotiateDeflate(header)
		if err != nil {
			t.Fatal(err)
		}
		var wire bytes.Buffer
		w, _ := flate.NewWriter(&wire, flate.DefaultCompression)
		src, err := newPayloadSource("json", 16384, 7)
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(0); seq < 100; seq++ {
			p := src.fill(nil, seq%3) // repeats: context takeover pays off
			wire.Reset()
			if !takeover {
				w.Reset(&wire)
			}
			_, _ = w.Write(p)
			_ = w.Flush()
			out, err := receiver.decompress(bytes.TrimSuffix(wire.Bytes(), syncMarker))
			if err != nil {
				t.Fatalf("%s: message %d: %v", header, seq, err)
			}
			if !bytes.Equal(out, p) {
				t.Fatalf("%s: message %d differs", header, seq)
			}
		}
	}
}

// Precompressed messages (prefix, stored stamp, suffix) inflate to exactly
// the message, one after another on a context-takeover stream.
func TestPrecompressedMessagesInflate(t *testing.T) {
	for _, size := range []int{4, 256, 16384} {
		src, err := newPayloadSource("json", size, 9)
		if size < 64 {
			src, err = newPayloadSource("text", size, 9)
		}
		if err != nil {
			t.Fatal(err)
		}
		src.precompress()
		receiver, _ := negotiateDeflate("permessage-deflate")
		for seq := uint64(0); seq < 200; seq++ {
			out, err := receiver.decompress(src.appendDeflated(nil, seq))
			if err != nil {
				t.Fatalf("size %d, message %d: %v", size, seq, err)
			}
			if !bytes.Equal(out, src.fill(nil, seq)) {
				t.Fatalf("size %d, message %d differs", size, seq)
			}
		}
	}
}

func TestNegotiateDeflateRejectsUnofferedParameters(t *testing.T) {
	for _, header := range []string{"", "x-webkit-deflate-frame", "permessage-deflate; client_max_window_bits=10", "permessage-deflate, permessage-deflate"} {
		if _, err := negotiateDeflate(header); err == nil {
			t.Errorf("%q was accepted", header)
		}
	}
	if _, err := negotiateDeflate("permessage-deflate; server_max_window_bits=12"); err != nil {
		t.Error(err)
	}
}

// A frame built by AppendPayload unmasks to exactly what fill builds, and
// matches accepts that and nothing else.
func TestAppendPayloadStampsTheMaskedFrame(t *testing.T) {
	for _, kind := range []string{"text", "binary", "json"} {
		src, err := newPayloadSource(kind, 300, 5)
		if err != nil {
			t.Fatal(err)
		}
		c := &Conn{mask: 12345}
		for seq := uint64(0); seq < 100; seq++ {
			frame := c.AppendPayload(nil, src, seq)
			header := 4 // 2 bytes + 16-bit length
			key := uint32(frame[header]) | uint32(frame[header+1])<<8 | uint32(frame[header+2])<<16 | uint32(frame[header+3])<<24
			got := make([]byte, len(frame)-header-4)
			maskCopy(got, frame[header+4:], key)
			want := src.fill(nil, seq)
			if !bytes.Equal(got, want) || !src.matches(got, seq) {
				t.Fatalf("%s: message %d differs", kind, seq)
			}
			if src.matches(got, seq+1) {
				t.Fatalf("%s: message %d matches message %d", kind, seq, seq+1)
			}
			got[len(got)-1] ^= 1
			if src.matches(got, seq) {
				t.Fatalf("%s: a changed message %d matches", kind, seq)
			}
		}
	}
}

func TestJSONPayloadsAreValidAndExact(t *testing.T) {
	src, err := newPayloadSource("json", 16384, 3)
	if err != nil {
		t.Fatal(err)
	}
	a, b := src.fill(nil, 1), src.fill(nil, 2)
	if len(a) != 16384 || bytes.Equal(a, b) {
		t.Fatalf("sizes %d %d, equal %v", len(a), len(b), bytes.Equal(a, b))
	}
	var doc map[string]any
	if err := json.Unmarshal(a, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["id"] != "00000001" {
		t.Fatalf("stamp %v", doc["id"])
	}
}

func TestBroadcastPayload(t *testing.T) {
	p := broadcastPayload(64, 12)
	if len(p) != 64 || !bytes.HasPrefix(p, []byte("broadcast:64:12;broadcast:64:12;")) {
		t.Fatalf("%q", p)
	}
	if k, ok := broadcastNumber(p); !ok || k != 12 {
		t.Fatalf("%d %v", k, ok)
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:1", "[::1]:1", "127.1.2.3:80"} {
		if err := checkLoopback(addr); err != nil {
			t.Error(err)
		}
	}
	for _, addr := range []string{"10.0.0.1:80", "example.com:80", "0.0.0.0:80"} {
		if err := checkLoopback(addr); err == nil {
			t.Errorf("%s accepted", addr)
		}
	}
}

func TestFanoutPayloadCarriesItsNumber(t *testing.T) {
	for _, k := range []int{0, 7, 12345, fanoutMaxMessages - 1} {
		p := fanoutPayload(64, k)
		if len(p) != 64 {
			t.Fatalf("message %d: %d bytes", k, len(p))
		}
		if got, ok := fanoutNumber(p); !ok || got != k {
			t.Fatalf("message %d parsed as %d, %v", k, got, ok)
		}
	}
	for _, bad := range []string{"", "fanout:", "fanout:x;", "broadcast:1;", "fanout:-1;"} {
		if _, ok := fanoutNumber([]byte(bad)); ok {
			t.Fatalf("%q parsed", bad)
		}
	}
}

// A Socket.IO event as python-socketio sends it unwraps to the payload; the
// publisher's event wraps it the way the server's handler expects.
func TestSocketIOFraming(t *testing.T) {
	sio := fanoutProtocol{socketio: true}
	payload := fanoutPayload(64, 3)
	wire := append(append([]byte(`42["msg","`), payload...), `"]`...)
	if got, ok := sio.unwrap(wire); !ok || !bytes.Equal(got, payload) {
		t.Fatalf("unwrap: %q, %v", got, ok)
	}
	if _, ok := sio.unwrap([]byte(`42["subscribed",123]`)); ok {
		t.Fatal("another event unwrapped")
	}
	if got, want := string(sio.frame(payload)), `42["publish","`+string(payload)+`"]`; got != want {
		t.Fatalf("frame: %q", got)
	}
	plain := fanoutProtocol{}
	if got, ok := plain.unwrap(payload); !ok || !bytes.Equal(got, payload) {
		t.Fatal("plain messages are the payload")
	}
}

func TestParsePids(t *testing.T) {
	pids, err := parsePids("12, 34,,56")
	if err != nil || len(pids) != 3 || pids[0] != 12 || pids[2] != 56 {
		t.Fatalf("%v %v", pids, err)
	}
	if pids, err := parsePids(""); err != nil || pids != nil {
		t.Fatalf("empty: %v %v", pids, err)
	}
	if _, err := parsePids("12,x"); err == nil {
		t.Fatal("a bad pid was accepted")
	}
}
