package main

// permessage-deflate (RFC 7692), client side, on compress/flate.
//
// Sending: messages are compressed ahead of time (see payloadSource.precompress),
// so the generator spends no time compressing: compress/flate manages about
// 130 MB/s, which would make it the bottleneck. A compressor may always choose
// not to refer to earlier messages, so this is valid with context takeover.
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

const windowSize = 32 * 1024

var (
	syncMarker  = []byte{0x00, 0x00, 0xFF, 0xFF}
	inflateTail = []byte{0x00, 0x00, 0xFF, 0xFF, 0x01, 0x00, 0x00, 0xFF, 0xFF}
)

type deflateState struct {
	serverNoContextTakeover bool

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
			// Our messages never refer to earlier ones anyway.
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
	d.fr = flate.NewReader(bytes.NewReader(nil))
	return d, nil
}

// deflateFlushed compresses p on its own and sync-flushes: the output ends on
// a byte boundary with the 00 00 ff ff marker.
func deflateFlushed(p []byte) []byte {
	var out bytes.Buffer
	w, _ := flate.NewWriter(&out, flate.DefaultCompression) // a valid level: no error
	// Writes to a bytes.Buffer cannot fail.
	_, _ = w.Write(p)
	_ = w.Flush()
	return out.Bytes()
}

// storedBlockHeader starts a non-final stored block of stampSize bytes: the
// 3 header bits and padding, LEN and NLEN.
var storedBlockHeader = []byte{0x00, stampSize, 0x00, ^byte(stampSize), 0xFF}

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
