package main

// Message payloads. A source holds a pool of distinct templates; every message
// is a copy of the next template with the message's sequence number stamped
// into it, so no two messages on a connection are alike and no server can
// cache its way through a scenario.

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"strings"
)

const (
	poolSize  = 64
	stampSize = 8
)

type payloadSource struct {
	opcode    byte
	templates [][]byte
	stampAt   int // offset of the sequence stamp (-1: too short for one)
}

// newPayloadSource makes templates of size bytes of the given kind: "text"
// (random ASCII letters), "binary" (random bytes) or "json" (JSON-like text
// that compresses the way real API payloads do).
func newPayloadSource(kind string, size int, seed int64) (*payloadSource, error) {
	rng := rand.New(rand.NewSource(seed))
	s := &payloadSource{opcode: opText, stampAt: 0}
	for i := 0; i < poolSize; i++ {
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

// fill writes message number seq into dst (reusing its memory) and returns it.
func (s *payloadSource) fill(dst []byte, seq uint64) []byte {
	dst = append(dst[:0], s.templates[seq%poolSize]...)
	if s.stampAt < 0 {
		return dst
	}
	stamp := dst[s.stampAt : s.stampAt+stampSize]
	if s.opcode == opBinary {
		binary.LittleEndian.PutUint64(stamp, seq)
		return dst
	}
	const hex = "0123456789abcdef"
	for i := stampSize - 1; i >= 0; i-- {
		stamp[i] = hex[seq&0xF]
		seq >>= 4
	}
	return dst
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
