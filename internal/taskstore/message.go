package taskstore

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Message is a task as asynq stores it in the "msg" field of its task hash:
// the protocol-buffer TaskMessage of asynq v0.26 (internal/proto/asynq.proto),
// which this file encodes and decodes by field number.
type Message struct {
	Type    string
	Payload []byte
	Headers map[string]string
	ID      string
	Queue   string
	// Retry is the most retries asynq makes before it archives the task.
	Retry int
	// Timeout bounds one processing; asynq stores whole seconds.
	Timeout time.Duration
	// Retention is how long asynq keeps the task once completed; whole
	// seconds.
	Retention time.Duration

	// Set by asynq as the task runs; read by DecodeMessage, written by
	// Encode when set.
	Retried      int
	ErrorMsg     string
	LastFailedAt int64 // Unix seconds
	Deadline     int64 // Unix seconds; 0 means none
	CompletedAt  int64 // Unix seconds
}

// TaskMessage field numbers (asynq v0.26 internal/proto/asynq.proto).
const (
	fieldType         protowire.Number = 1
	fieldPayload      protowire.Number = 2
	fieldID           protowire.Number = 3
	fieldQueue        protowire.Number = 4
	fieldRetry        protowire.Number = 5
	fieldRetried      protowire.Number = 6
	fieldErrorMsg     protowire.Number = 7
	fieldTimeout      protowire.Number = 8
	fieldDeadline     protowire.Number = 9
	fieldLastFailedAt protowire.Number = 11
	fieldRetention    protowire.Number = 12
	fieldCompletedAt  protowire.Number = 13
	fieldHeaders      protowire.Number = 15
)

// Encode returns m as asynq's client would store it. Zero fields are left
// out, as proto3 does; headers are written in key order.
func (m Message) Encode() []byte {
	var b []byte
	str := func(n protowire.Number, s string) {
		if s != "" {
			b = protowire.AppendTag(b, n, protowire.BytesType)
			b = protowire.AppendString(b, s)
		}
	}
	num := func(n protowire.Number, v int64) {
		if v != 0 {
			b = protowire.AppendTag(b, n, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v))
		}
	}
	str(fieldType, m.Type)
	if len(m.Payload) > 0 {
		b = protowire.AppendTag(b, fieldPayload, protowire.BytesType)
		b = protowire.AppendBytes(b, m.Payload)
	}
	str(fieldID, m.ID)
	str(fieldQueue, m.Queue)
	num(fieldRetry, int64(int32(m.Retry)))
	num(fieldRetried, int64(int32(m.Retried)))
	str(fieldErrorMsg, m.ErrorMsg)
	num(fieldTimeout, int64(m.Timeout/time.Second))
	num(fieldDeadline, m.Deadline)
	num(fieldLastFailedAt, m.LastFailedAt)
	num(fieldRetention, int64(m.Retention/time.Second))
	num(fieldCompletedAt, m.CompletedAt)
	keys := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var e []byte
		e = protowire.AppendTag(e, 1, protowire.BytesType)
		e = protowire.AppendString(e, k)
		e = protowire.AppendTag(e, 2, protowire.BytesType)
		e = protowire.AppendString(e, m.Headers[k])
		b = protowire.AppendTag(b, fieldHeaders, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return b
}

// errMessage is wrapped by every DecodeMessage error.
var errMessage = errors.New("undecodable asynq task message")

// DecodeMessage parses a stored task message. Unknown fields are skipped.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return Message{}, fmt.Errorf("%w: %w", errMessage, protowire.ParseError(l))
		}
		b = b[l:]
		switch typ {
		case protowire.VarintType:
			v, l := protowire.ConsumeVarint(b)
			if l < 0 {
				return Message{}, fmt.Errorf("%w: field %d: %w", errMessage, n, protowire.ParseError(l))
			}
			b = b[l:]
			switch n {
			case fieldRetry:
				m.Retry = int(int32(v))
			case fieldRetried:
				m.Retried = int(int32(v))
			case fieldTimeout:
				m.Timeout = seconds(int64(v))
			case fieldDeadline:
				m.Deadline = int64(v)
			case fieldLastFailedAt:
				m.LastFailedAt = int64(v)
			case fieldRetention:
				m.Retention = seconds(int64(v))
			case fieldCompletedAt:
				m.CompletedAt = int64(v)
			}
		case protowire.BytesType:
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return Message{}, fmt.Errorf("%w: field %d: %w", errMessage, n, protowire.ParseError(l))
			}
			b = b[l:]
			switch n {
			case fieldType:
				m.Type = string(v)
			case fieldPayload:
				m.Payload = append([]byte(nil), v...)
			case fieldID:
				m.ID = string(v)
			case fieldQueue:
				m.Queue = string(v)
			case fieldErrorMsg:
				m.ErrorMsg = string(v)
			case fieldHeaders:
				k, val, err := decodeHeader(v)
				if err != nil {
					return Message{}, err
				}
				if m.Headers == nil {
					m.Headers = map[string]string{}
				}
				m.Headers[k] = val
			}
		default:
			l := protowire.ConsumeFieldValue(n, typ, b)
			if l < 0 {
				return Message{}, fmt.Errorf("%w: field %d: %w", errMessage, n, protowire.ParseError(l))
			}
			b = b[l:]
		}
	}
	return m, nil
}

// decodeHeader parses one map entry of the headers field.
func decodeHeader(b []byte) (key, value string, err error) {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return "", "", fmt.Errorf("%w: header: %w", errMessage, protowire.ParseError(l))
		}
		b = b[l:]
		if typ != protowire.BytesType {
			l = protowire.ConsumeFieldValue(n, typ, b)
			if l < 0 {
				return "", "", fmt.Errorf("%w: header: %w", errMessage, protowire.ParseError(l))
			}
			b = b[l:]
			continue
		}
		v, l := protowire.ConsumeBytes(b)
		if l < 0 {
			return "", "", fmt.Errorf("%w: header: %w", errMessage, protowire.ParseError(l))
		}
		b = b[l:]
		switch n {
		case 1:
			key = string(v)
		case 2:
			value = string(v)
		}
	}
	return key, value, nil
}

// seconds turns whole seconds into a Duration, saturating.
func seconds(s int64) time.Duration {
	if s > math.MaxInt64/int64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(s) * time.Second
}

// MessageID returns the task ID of an encoded message without decoding
// the rest (its payload and headers): "" when b is not a message or has
// no ID. DecodeMessage(b).ID, for less.
func MessageID(b []byte) string {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return ""
		}
		b = b[l:]
		if n == fieldID && typ == protowire.BytesType {
			v, l := protowire.ConsumeBytes(b)
			if l < 0 {
				return ""
			}
			return string(v)
		}
		if l = protowire.ConsumeFieldValue(n, typ, b); l < 0 {
			return ""
		}
		b = b[l:]
	}
	return ""
}
