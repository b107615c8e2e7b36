package main

// Message payloads. A source holds a pool of distinct templates; message seq
// is template seq mod pool with seq stamped into it, so no two messages on a
// connection are alike and no server can cache its way through a scenario.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand"
	"strings"
)

const (
	maxPool      = 64
	maxPoolBytes = 16 << 20
	stampSize    = 8
)

type payloadSource struct {
	opcode    byte
	size      int
	templates [][]byte
	stampAt   int // offset of the sequence stamp (-1: too short for one)
	// deflated holds, per template, the compressed part before the stamp
	// (ending with a sync flush) and after it (marker stripped); see
	// precompress.
	deflated [][2][]byte
}

// newPayloadSource makes up to 64 templates (16 MiB in all, at least 4) of
// size bytes of the given kind: "text" (random ASCII letters), "binary"
// (random bytes) or "json" (JSON-like text that compresses the way real API
// payloads do).
func newPayloadSource(kind string, size int, seed int64) (*payloadSource, error) {
	rng := rand.New(rand.NewSource(seed))
	s := &payloadSource{opcode: opText, size: size, stampAt: 0}
	pool := maxPoolBytes / (size + 1)
	if pool > maxPool {
		pool = maxPool
	} else if pool < 4 {
		pool = 4
	}
	for i := 0; i < pool; i++ {
		var t []byte
		switch kind {
		case "text":
			t = randomLetters(rng, size)
		case "binary":
			s.opcode = opBinary
			t = make([]byte, size)
			rng.Read(t)
		case "json":
			t, s.stampAt = jsonDocument(rng, size)
		default:
			return nil, fmt.Errorf("unknown payload kind %q", kind)
		}
		s.templates = append(s.templates, t)
	}
	if size < stampSize {
		s.stampAt = -1
	}
	return s, nil
}

// template is the template of message seq.
func (s *payloadSource) template(seq uint64) []byte {
	return s.templates[seq%uint64(len(s.templates))]
}

// stamp is what message seq carries at stampAt: seq in little-endian binary,
// or as hex digits in text.
func (s *payloadSource) stamp(seq uint64) (stamp [stampSize]byte) {
	if s.opcode == opBinary {
		binary.LittleEndian.PutUint64(stamp[:], seq)
		return stamp
	}
	const hex = "0123456789abcdef"
	for i := stampSize - 1; i >= 0; i-- {
		stamp[i] = hex[seq&0xF]
		seq >>= 4
	}
	return stamp
}

// fill writes message seq into dst (reusing its memory) and returns it.
func (s *payloadSource) fill(dst []byte, seq uint64) []byte {
	dst = append(dst[:0], s.template(seq)...)
	if s.stampAt >= 0 {
		stamp := s.stamp(seq)
		copy(dst[s.stampAt:], stamp[:])
	}
	return dst
}

// precompress prepares the permessage-deflate form of every template: the
// part before the stamp compressed and sync-flushed, the stamp in a stored
// block, the part after it compressed with its trailing 00 00 ff ff removed.
// Any message is then a concatenation, with no compression work per message.
func (s *payloadSource) precompress() {
	if s.deflated != nil {
		return
	}
	for _, t := range s.templates {
		if s.stampAt < 0 {
			s.deflated = append(s.deflated, [2][]byte{bytes.TrimSuffix(deflateFlushed(t), syncMarker), nil})
			continue
		}
		before := deflateFlushed(t[:s.stampAt])
		after := bytes.TrimSuffix(deflateFlushed(t[s.stampAt+stampSize:]), syncMarker)
		s.deflated = append(s.deflated, [2][]byte{before, after})
	}
}

// appendDeflated appends the compressed payload of message seq to dst.
func (s *payloadSource) appendDeflated(dst []byte, seq uint64) []byte {
	parts := s.deflated[seq%uint64(len(s.deflated))]
	dst = append(dst, parts[0]...)
	if s.stampAt >= 0 {
		stamp := s.stamp(seq)
		dst = append(dst, storedBlockHeader...)
		dst = append(append(dst, stamp[:]...), parts[1]...)
	}
	return dst
}

// matches reports whether p is message seq, byte for byte.
func (s *payloadSource) matches(p []byte, seq uint64) bool {
	t := s.template(seq)
	if len(p) != len(t) {
		return false
	}
	if s.stampAt < 0 {
		return bytes.Equal(p, t)
	}
	stamp := s.stamp(seq)
	end := s.stampAt + stampSize
	return bytes.Equal(p[:s.stampAt], t[:s.stampAt]) &&
		bytes.Equal(p[s.stampAt:end], stamp[:]) &&
		bytes.Equal(p[end:], t[end:])
}

func randomLetters(rng *rand.Rand, n int) []byte {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[rng.Intn(len(letters))]
	}
	return b
}

var words = strings.Fields(`alpha beta gamma delta order customer invoice shipped pending
	active region europe america asia price total amount currency euro dollar yen user admin
	guest session token request response status ok error retry timeout latency cache hit miss
	stream event click view page cart checkout payment refund review rating comment reply like
	share follow message channel room online offline green blue red small medium large north
	south east west monday friday morning evening update create delete archive restore`)

// jsonDocument returns a JSON object of exactly size bytes: a list of records
// with ids, names, timestamps, numbers, tags and short sentences, then a
// "pad" string that brings it to size. The "id" value holds the stamp.
func jsonDocument(rng *rand.Rand, size int) ([]byte, int) {
	const head = `{"id":"`
	var b strings.Builder
	b.WriteString(head + "00000000" + `","kind":"batch","items":[`)
	const tail = `],"pad":""}`
	for n := 0; ; n++ {
		rec := jsonRecord(rng, n)
		if b.Len()+len(rec)+1+len(tail) > size {
			break
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(rec)
	}
	doc := b.String() + `],"pad":"`
	if pad := size - len(doc) - 2; pad > 0 {
		doc += string(randomLetters(rng, pad))
	}
	doc += `"}`
	return []byte(doc), len(head)
}

func jsonRecord(rng *rand.Rand, n int) string {
	word := func() string { return words[rng.Intn(len(words))] }
	var note strings.Builder
	for i, k := 0, 4+rng.Intn(8); i < k; i++ {
		if i > 0 {
			note.WriteByte(' ')
		}
		note.WriteString(word())
	}
	return fmt.Sprintf(`{"seq":%d,"user":"%s_%d","ts":%d,"price":%d.%02d,"qty":%d,`+
		`"tags":["%s","%s"],"active":%t,"note":"%s"}`,
		n, word(), rng.Intn(10000), 1763700000000+rng.Int63n(1e9), rng.Intn(1000), rng.Intn(100),
		1+rng.Intn(20), word(), word(), rng.Intn(2) == 0, note.String())
}
