package main

// The client side of one WebSocket connection: the opening handshake, masked
// frames out, unmasked frames in, the closing handshake. Only what the
// benchmark needs: no fragmentation on send, no subprotocols; TLS (wss://)
// when tls.go's tlsConfig is set.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"time"
)

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA

	acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

	pongMaskKey = 0x5A17C3E9
)

// errClosed is returned by ReadMessage when the server sent a close frame.
var errClosed = errors.New("server sent a close frame")

// Conn is one client connection. A reader goroutine and a writer goroutine may
// use it at the same time (ReadMessage vs. the Write* methods), but not two of
// either kind.
type Conn struct {
	nc      net.Conn
	br      *bufio.Reader
	wbuf    []byte // outgoing frames are built here
	scratch []byte // a compressed payload being framed
	rbuf    []byte // payload of the current incoming frame
	msg     []byte // a fragmented message being reassembled
	mask    uint64 // xorshift state for mask keys
	deflate *deflateState
	// Extensions is the Sec-WebSocket-Extensions response header ("" if none).
	Extensions string
}

// Dial opens a TCP connection to addr and performs the opening handshake for
// path. With offerDeflate it offers permessage-deflate and fails unless the
// server accepts it.
func Dial(addr, path string, offerDeflate bool, timeout time.Duration) (*Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	if tcp, ok := nc.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
	}
	if tlsConfig != nil {
		secure, err := clientTLS(nc, addr, timeout)
		if err != nil {
			nc.Close()
			return nil, err
		}
		nc = secure
	}
	c := &Conn{nc: nc, br: bufio.NewReaderSize(nc, 64*1024)}
	if err := c.handshake(addr, path, offerDeflate, timeout); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *Conn) handshake(addr, path string, offerDeflate bool, timeout time.Duration) error {
	var nonce [24]byte // 16 bytes for the key, 8 to seed the mask generator
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	key := base64.StdEncoding.EncodeToString(nonce[:16])
	c.mask = binary.LittleEndian.Uint64(nonce[16:]) | 1

	var req strings.Builder
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", path, addr)
	fmt.Fprintf(&req, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key)
	if offerDeflate {
		// No client_max_window_bits: Go's compressor always uses a 32 KiB
		// window, so the server must not ask for a smaller one.
		req.WriteString("Sec-WebSocket-Extensions: permessage-deflate\r\n")
	}
	req.WriteString("\r\n")

	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.nc, req.String()); err != nil {
		return err
	}
	tp := textproto.NewReader(c.br)
	status, err := tp.ReadLine()
	if err != nil {
		return fmt.Errorf("reading the handshake response: %w", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		return fmt.Errorf("handshake refused: %q", status)
	}
	header, err := tp.ReadMIMEHeader()
	if err != nil {
		return fmt.Errorf("reading the handshake headers: %w", err)
	}
	if !strings.EqualFold(header.Get("Upgrade"), "websocket") {
		return fmt.Errorf("bad Upgrade header %q", header.Get("Upgrade"))
	}
	if !strings.Contains(strings.ToLower(header.Get("Connection")), "upgrade") {
		return fmt.Errorf("bad Connection header %q", header.Get("Connection"))
	}
	sum := sha1.Sum([]byte(key + acceptGUID))
	if got, want := header.Get("Sec-WebSocket-Accept"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		return fmt.Errorf("bad Sec-WebSocket-Accept %q, want %q", got, want)
	}
	c.Extensions = strings.Join(header.Values("Sec-WebSocket-Extensions"), ", ")
	switch {
	case offerDeflate:
		d, err := negotiateDeflate(c.Extensions)
		if err != nil {
			return err
		}
		c.deflate = d
	case c.Extensions != "":
		return fmt.Errorf("server accepted an extension that was not offered: %q", c.Extensions)
	}
	return nil
}

// AppendPayload appends message seq of src as one frame, compressed when
// permessage-deflate is in use (src must have been precompressed). Plain, the
// template is masked straight into dst and the stamp patched in, so the
// message is never built separately.
func (c *Conn) AppendPayload(dst []byte, src *payloadSource, seq uint64) []byte {
	if c.deflate != nil {
		c.scratch = src.appendDeflated(c.scratch[:0], seq)
		return appendFrame(dst, src.opcode, c.scratch, true, c.nextMaskKey())
	}
	template := src.template(seq)
	key := c.nextMaskKey()
	dst = appendFrame(dst, src.opcode, template, false, key)
	if src.stampAt >= 0 {
		stamp := src.stamp(seq)
		at := len(dst) - len(template) + src.stampAt
		for i := range stamp {
			dst[at+i] = stamp[i] ^ byte(key>>(8*((src.stampAt+i)&3)))
		}
	}
	return dst
}

// WriteMessage sends one uncompressed data message in one write.
func (c *Conn) WriteMessage(opcode byte, payload []byte) error {
	c.wbuf = appendFrame(c.wbuf[:0], opcode, payload, false, c.nextMaskKey())
	return c.WriteRaw(c.wbuf)
}

// WriteRaw writes frames built with AppendPayload.
func (c *Conn) WriteRaw(frames []byte) error {
	_, err := c.nc.Write(frames)
	return err
}

// appendFrame appends one FIN frame, payload masked with key, to dst.
func appendFrame(dst []byte, opcode byte, payload []byte, rsv1 bool, key uint32) []byte {
	b0 := 0x80 | opcode
	if rsv1 {
		b0 |= 0x40
	}
	n := len(payload)
	switch {
	case n < 126:
		dst = append(dst, b0, 0x80|byte(n))
	case n <= 0xFFFF:
		dst = append(dst, b0, 0x80|126, byte(n>>8), byte(n))
	default:
		dst = append(dst, b0, 0x80|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	dst = binary.LittleEndian.AppendUint32(dst, key)
	start := len(dst)
	if free := cap(dst) - start; free < n {
		dst = append(dst[:cap(dst)], make([]byte, n-free)...)
	}
	dst = dst[:start+n]
	maskCopy(dst[start:], payload, key)
	return dst
}

// nextMaskKey steps a xorshift64 generator; the benchmark needs distinct keys,
// not unpredictable ones.
func (c *Conn) nextMaskKey() uint32 {
	x := c.mask
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	c.mask = x
	return uint32(x >> 32)
}

// maskCopy writes src XOR the 4-byte key (its first byte is the key's least
// significant byte) to dst, len(src) bytes, 32 per step through 8-byte words:
// the copy and the masking in one pass.
func maskCopy(dst, src []byte, key uint32) {
	k := uint64(key) | uint64(key)<<32
	dst = dst[:len(src)]
	for len(src) >= 32 {
		binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(src)^k)
		binary.LittleEndian.PutUint64(dst[8:], binary.LittleEndian.Uint64(src[8:])^k)
		binary.LittleEndian.PutUint64(dst[16:], binary.LittleEndian.Uint64(src[16:])^k)
		binary.LittleEndian.PutUint64(dst[24:], binary.LittleEndian.Uint64(src[24:])^k)
		src, dst = src[32:], dst[32:]
	}
	for len(src) >= 8 {
		binary.LittleEndian.PutUint64(dst, binary.LittleEndian.Uint64(src)^k)
		src, dst = src[8:], dst[8:]
	}
	for i := range src {
		dst[i] = src[i] ^ byte(key>>(8*(i&3)))
	}
}

// Message is one received data message. Payload is only valid until the next
// ReadMessage call.
type Message struct {
	Opcode     byte
	Payload    []byte
	Compressed bool // it arrived with RSV1 set
	WireSize   int  // payload bytes on the wire (after compression)
}

// ReadMessage returns the next data message, answering pings on the way. It
// returns errClosed when the server sends a close frame.
func (c *Conn) ReadMessage() (Message, error) {
	var m Message
	fragmented := false
	for {
		fin, rsv1, opcode, payload, err := c.readFrame()
		if err != nil {
			return m, err
		}
		switch opcode {
		case opPing:
			// A separate buffer and a fixed key: the writer goroutine owns
			// wbuf and the mask generator.
			if err := c.WriteRaw(appendFrame(nil, opPong, payload, false, pongMaskKey)); err != nil {
				return m, err
			}
			continue
		case opPong:
			continue
		case opClose:
			return m, errClosed
		case opText, opBinary:
			if fragmented {
				return m, errors.New("new data frame inside a fragmented message")
			}
			m.Opcode, m.Compressed = opcode, rsv1
		case opContinuation:
			if !fragmented {
				return m, errors.New("continuation frame without a message")
			}
			if rsv1 {
				return m, errors.New("RSV1 set on a continuation frame")
			}
		default:
			return m, fmt.Errorf("unknown opcode %#x", opcode)
		}
		if m.Compressed && c.deflate == nil {
			return m, errors.New("RSV1 set without permessage-deflate")
		}
		m.WireSize += len(payload)
		if fin && !fragmented {
			m.Payload = payload
		} else {
			if !fragmented {
				c.msg = c.msg[:0]
				fragmented = true
			}
			c.msg = append(c.msg, payload...)
			if !fin {
				continue
			}
			m.Payload = c.msg
		}
		if m.Compressed {
			out, err := c.deflate.decompress(m.Payload)
			if err != nil {
				return m, fmt.Errorf("inflating a message: %w", err)
			}
			m.Payload = out
		}
		return m, nil
	}
}

func (c *Conn) readFrame() (fin, rsv1 bool, opcode byte, payload []byte, err error) {
	head, err := c.br.Peek(2)
	if err != nil {
		return
	}
	b0, b1 := head[0], head[1]
	_, _ = c.br.Discard(2)
	fin, rsv1, opcode = b0&0x80 != 0, b0&0x40 != 0, b0&0x0F
	if b0&0x30 != 0 {
		err = errors.New("RSV2/RSV3 set")
		return
	}
	if b1&0x80 != 0 {
		err = errors.New("the server masked a frame")
		return
	}
	n := uint64(b1 & 0x7F)
	switch n {
	case 126:
		var ext []byte
		if ext, err = c.br.Peek(2); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(ext))
		_, _ = c.br.Discard(2)
	case 127:
		var ext []byte
		if ext, err = c.br.Peek(8); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(ext)
		_, _ = c.br.Discard(8)
	}
	if opcode >= opClose && (n > 125 || !fin) {
		err = errors.New("bad control frame")
		return
	}
	if n > 1<<30 {
		err = fmt.Errorf("frame of %d bytes", n)
		return
	}
	if uint64(cap(c.rbuf)) < n {
		c.rbuf = make([]byte, n)
	}
	payload = c.rbuf[:n]
	_, err = io.ReadFull(c.br, payload)
	return
}

// SendClose sends a 1000 close frame and nothing else.
func (c *Conn) SendClose() error {
	return c.WriteRaw(appendFrame(nil, opClose, []byte{0x03, 0xE8}, false, c.nextMaskKey()))
}

// CloseHandshake sends a 1000 close frame, waits (at most timeout) for the
// server's close frame, skipping data, then closes TCP.
func (c *Conn) CloseHandshake(timeout time.Duration) error {
	defer c.nc.Close()
	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	if err := c.SendClose(); err != nil {
		return err
	}
	for {
		_, _, opcode, _, err := c.readFrame()
		if err != nil {
			return fmt.Errorf("waiting for the close frame: %w", err)
		}
		if opcode == opClose {
			return nil
		}
	}
}

// Abort closes TCP without a closing handshake.
func (c *Conn) Abort() { c.nc.Close() }

// expectPayload compares a received message with message seq of src.
func expectPayload(m Message, src *payloadSource, seq uint64) error {
	if m.Opcode != src.opcode {
		return fmt.Errorf("echo has opcode %#x, sent %#x", m.Opcode, src.opcode)
	}
	if !src.matches(m.Payload, seq) {
		return fmt.Errorf("echo differs from message %d (%d bytes back, %d sent)", seq, len(m.Payload), src.size)
	}
	return nil
}

// expectEqual compares a received message with what was sent.
func expectEqual(m Message, opcode byte, want []byte) error {
	if m.Opcode != opcode {
		return fmt.Errorf("echo has opcode %#x, sent %#x", m.Opcode, opcode)
	}
	if !bytes.Equal(m.Payload, want) {
		return fmt.Errorf("echo differs from the message sent (%d bytes back, %d sent)", len(m.Payload), len(want))
	}
	return nil
}
