package main

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"testing"
)

func TestMaskBytesMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for n := 0; n < 200; n++ {
		data := make([]byte, n)
		rng.Read(data)
		key := rng.Uint32()
		got := append([]byte(nil), data...)
		maskBytes(got, key)
		var k [4]byte
		k[0], k[1], k[2], k[3] = byte(key), byte(key>>8), byte(key>>16), byte(key>>24)
		for i := range data {
			if got[i] != data[i]^k[i%4] {
				t.Fatalf("length %d: byte %d differs", n, i)
			}
		}
	}
}

// A message compressed by one side's compressor (with context takeover)
// inflates back through the other side's per-message inflater.
func TestDeflateRoundTripWithContextTakeover(t *testing.T) {
	for _, header := range []string{"permessage-deflate", "permessage-deflate; server_no_context_takeover; client_no_context_takeover"} {
		sender, err := negotiateDeflate(header)
		if err != nil {
			t.Fatal(err)
		}
		receiver, err := negotiateDeflate(header)
		if err != nil {
			t.Fatal(err)
		}
		// The receiver inflates what the sender's compressor produced, so
		// the two must agree on context takeover in that direction.
		receiver.serverNoContextTakeover = sender.clientNoContextTakeover
		src, err := newPayloadSource("json", 16384, 7)
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(0); seq < 200; seq++ {
			p := src.fill(nil, seq%3)
			wire := append([]byte(nil), sender.compress(p)...)
			out, err := receiver.decompress(wire)
			if err != nil {
				t.Fatalf("%s: message %d: %v", header, seq, err)
			}
			if !bytes.Equal(out, p) {
				t.Fatalf("%s: message %d differs", header, seq)
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
