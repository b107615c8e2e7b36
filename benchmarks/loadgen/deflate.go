package main

// permessage-deflate (RFC 7692), client side, on compress/flate.
//
// Sending: one flate.Writer per connection; each message is written and
// flushed (a sync flush ends with 00 00 ff ff, which RFC 7692 says to strip).
// Receiving: compress/flate has no way to feed a stream message by message, so
// every message is inflated on its own: the payload, the 00 00 ff ff tail that
// was stripped, and an empty final stored block (01 00 00 ff ff) that ends the
// stream cleanly; the last 32 KiB of earlier output is passed as the preset
// dictionary, which is exactly the context a shared window would hold.

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"strconv"
	"strings"
)

const (
	windowSize = 32 * 1024
	// clientLevel is the client's compression level. BestSpeed keeps the load
	// generator far from being the bottleneck; the server still has to inflate
	// a real deflate stream.
	clientLevel = flate.BestSpeed
)

var inflateTail = []byte{0x00, 0x00, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0xFF, 0xFF}

type deflateState struct {
	serverNoContextTakeover bool
	clientNoContextTakeover bool

	fw   *flate.Writer
	wout bytes.Buffer

	fr   io.ReadCloser
	in   []byte
	src  bytes.Reader
	out  bytes.Buffer
	hist []byte // the last windowSize bytes inflated (context takeover)
}

// negotiateDeflate checks the server's Sec-WebSocket-Extensions answer to a
// bare "permessage-deflate" offer and prepares the (de)compressors.
func negotiateDeflate(header string) (*deflateState, error) {
	if header == "" {
		return nil, fmt.Errorf("permessage-deflate was offered but the server did not accept it")
	}
	if strings.Contains(header, ",") {
		return nil, fmt.Errorf("more than one extension accepted: %q", header)
	}
	params := strings.Split(header, ";")
	if strings.TrimSpace(params[0]) != "permessage-deflate" {
		return nil, fmt.Errorf("unexpected extension %q", header)
	}
	d := &deflateState{}
	for _, p := range params[1:] {
		name, value, hasValue := strings.Cut(strings.TrimSpace(p), "=")
		switch name {
		case "server_no_context_takeover":
			d.serverNoContextTakeover = true
		case "client_no_context_takeover":
			d.clientNoContextTakeover = true
		case "server_max_window_bits":
			// Any window up to 15 bits inflates with a 32 KiB window.
			bits, err := strconv.Atoi(strings.Trim(value, `"`))
			if !hasValue || err != nil || bits < 8 || bits > 15 {
				return nil, fmt.Errorf("bad server_max_window_bits in %q", header)
			}
		default:
			// client_max_window_bits included: it was not offered.
			return nil, fmt.Errorf("unexpected parameter %q in %q", name, header)
		}
	}
	fw, err := flate.NewWriter(&d.wout, clientLevel)
	if err != nil {
		return nil, err
	}
	d.fw = fw
	d.fr = flate.NewReader(bytes.NewReader(nil))
	return d, nil
}

// compress returns the compressed payload of one message; it is valid until
// the next call.
func (d *deflateState) compress(payload []byte) []byte {
	d.wout.Reset()
	if d.clientNoContextTakeover {
		d.fw.Reset(&d.wout)
	}
	// Writes to a bytes.Buffer cannot fail.
	_, _ = d.fw.Write(payload)
	_ = d.fw.Flush()
	out := d.wout.Bytes()
	if n := len(out); n >= 4 && out[n-4] == 0 && out[n-3] == 0 && out[n-2] == 0xFF && out[n-1] == 0xFF {
		out = out[:n-4]
	}
	return out
}

// decompress inflates one message; the result is valid until the next call.
func (d *deflateState) decompress(payload []byte) ([]byte, error) {
	d.in = append(append(d.in[:0], payload...), inflateTail...)
	d.src.Reset(d.in)
	var dict []byte
	if !d.serverNoContextTakeover {
		dict = d.hist
	}
	if err := d.fr.(flate.Resetter).Reset(&d.src, dict); err != nil {
		return nil, err
	}
	d.out.Reset()
	if _, err := d.out.ReadFrom(d.fr); err != nil {
		return nil, err
	}
	out := d.out.Bytes()
	if !d.serverNoContextTakeover {
		d.remember(out)
	}
	return out, nil
}

func (d *deflateState) remember(out []byte) {
	if len(out) >= windowSize {
		d.hist = append(d.hist[:0], out[len(out)-windowSize:]...)
		return
	}
	d.hist = append(d.hist, out...)
	if extra := len(d.hist) - windowSize; extra > 0 {
		copy(d.hist, d.hist[extra:])
		d.hist = d.hist[:windowSize]
	}
}
