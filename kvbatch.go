package buoy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"buoy/internal/kv"
	"buoy/internal/store"
)

// The binary bodies of kvBatchRawOp. JSON carried each command as base64
// and scanned the frame four times on its way (encode, envelope, decode
// of the envelope, decode of the body) and the answers, with every put's
// value, as many times back: a tenth of the cluster's CPU under load.
//
// Request: uvarint #writes | per write: uvarint ttl (ns) | bytes command
// Answers: uvarint #answers | per answer: 0 | result (kv.AppendResult, put values left out)
//
//	or 1 | bytes code | bytes message
//
// where "bytes" is a uvarint length followed by that many bytes.
const (
	answerResult byte = 0
	answerError  byte = 1
)

// errKVBatch marks a batch body that does not decode.
var errKVBatch = errors.New("malformed kv batch")

func encodeKVBatch(reqs []kvRequest) []byte {
	size := binary.MaxVarintLen64
	for _, r := range reqs {
		size += 2*binary.MaxVarintLen64 + len(r.Cmd)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(reqs)))
	for _, r := range reqs {
		b = binary.AppendUvarint(b, uint64(max(r.TTL, 0)))
		b = binary.AppendUvarint(b, uint64(len(r.Cmd)))
		b = append(b, r.Cmd...)
	}
	return b
}

// decodeKVBatch reads a batch of at most kvMaxBatch writes. The commands
// alias b.
func decodeKVBatch(b []byte) ([]kvRequest, error) {
	n, b, err := uvarint(b, "write count")
	if err != nil {
		return nil, err
	}
	if n == 0 || n > kvMaxBatch {
		return nil, fmt.Errorf("%w: %d writes, want 1 to %d", errKVBatch, n, kvMaxBatch)
	}
	reqs := make([]kvRequest, n)
	for i := range reqs {
		var ttl uint64
		if ttl, b, err = uvarint(b, "ttl"); err != nil {
			return nil, err
		}
		if ttl > math.MaxInt64 {
			return nil, fmt.Errorf("%w: write %d: ttl out of range", errKVBatch, i)
		}
		reqs[i].TTL = time.Duration(ttl)
		if reqs[i].Cmd, b, err = chunk(b, "command"); err != nil {
			return nil, err
		}
	}
	if len(b) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last write", errKVBatch, len(b))
	}
	return reqs, nil
}

// encodeKVAnswers encodes a batch's answers, leaving out the values of
// puts: the follower that sent them has them (kv.FillPutValues).
func encodeKVAnswers(answers []kvAnswer) []byte {
	b := binary.AppendUvarint(nil, uint64(len(answers)))
	for _, a := range answers {
		if a.Result != nil && a.Error == "" {
			b = append(b, answerResult)
			b = kv.AppendResult(b, a.Result, true)
			continue
		}
		msg := a.Error
		if msg == "" {
			msg = "no result"
		}
		b = append(b, answerError)
		b = binary.AppendUvarint(b, uint64(len(a.Code)))
		b = append(b, a.Code...)
		b = binary.AppendUvarint(b, uint64(len(msg)))
		b = append(b, msg...)
	}
	return b
}

// decodeKVAnswers reads the answers to a batch of want writes.
func decodeKVAnswers(b []byte, want int) ([]kvAnswer, error) {
	n, b, err := uvarint(b, "answer count")
	if err != nil {
		return nil, err
	}
	if n != uint64(want) {
		return nil, fmt.Errorf("%w: %d answers for %d writes", errKVBatch, n, want)
	}
	answers := make([]kvAnswer, n)
	for i := range answers {
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: answer %d missing", errKVBatch, i)
		}
		kind := b[0]
		b = b[1:]
		switch kind {
		case answerResult:
			var r kv.Result
			if r, b, err = kv.DecodeResult(b); err != nil {
				return nil, fmt.Errorf("%w: answer %d: %w", errKVBatch, i, err)
			}
			answers[i].Result = &r
		case answerError:
			var code, msg []byte
			if code, b, err = chunk(b, "error code"); err != nil {
				return nil, err
			}
			if msg, b, err = chunk(b, "error"); err != nil {
				return nil, err
			}
			if len(msg) == 0 {
				return nil, fmt.Errorf("%w: answer %d is an error without a message", errKVBatch, i)
			}
			answers[i].Code, answers[i].Error = string(code), string(msg)
		default:
			return nil, fmt.Errorf("%w: answer %d has kind %d", errKVBatch, i, kind)
		}
	}
	if len(b) > 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last answer", errKVBatch, len(b))
	}
	return answers, nil
}

func uvarint(b []byte, what string) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, fmt.Errorf("%w: truncated or malformed %s", errKVBatch, what)
	}
	return v, b[n:], nil
}

func chunk(b []byte, what string) ([]byte, []byte, error) {
	n, b, err := uvarint(b, what+" length")
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: %s of %d bytes, %d left", errKVBatch, what, n, len(b))
	}
	return b[:n:n], b[n:], nil
}

// kvAnswerOf is a write's answer from its outcome on the leader.
func kvAnswerOf(res KVResult, err error) kvAnswer {
	if err != nil {
		return kvAnswer{Error: err.Error(), Code: store.Code(err)}
	}
	return kvAnswer{Result: &res}
}
