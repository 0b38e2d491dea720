package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Key layout. Every state key starts with a one-byte family prefix; times
// are 8-byte big-endian with the sign bit flipped, so byte order is time
// order (negative times included); record keys are length-prefixed
// (4 bytes, big-endian) so that a composite key is unambiguous and all keys
// of one record key are contiguous.
//
//	'm' name                          model metadata (sequence, watermark, low marks)
//	's' len key start                 window accumulators  -> end | accumulators
//	'c' end len key start             sessions' close index -> (empty);
//	                                  tumbling and hopping windows keep
//	                                  theirs in memory (earlier versions
//	                                  wrote it here: dropped when found)
//	't' len key start                 closed session       -> end
//	'x' expiry len key start          closed-session expiry -> (empty)
//	'd' id                            dedupe entry         -> time it last passed
//	'e' expiry id                     dedupe expiry        -> (empty); no longer
//	                                  written (a Dedupe keeps its expiries in
//	                                  memory) and dropped when found
//
// Sessions to close are found by scanning 'c' up to the close bound; a
// record's open windows (and a session's neighbours) by scanning 's' with
// the record key's prefix.
const (
	famMeta         = 'm'
	famState        = 's'
	famClose        = 'c'
	famClosed       = 't'
	famClosedExpiry = 'x'
	famDedupe       = 'd'
	famDedupeExpiry = 'e' // written by earlier versions only
	timeLen         = 8
	keyLenLen       = 4
)

// ErrBadKey is returned when parsing a key this package did not encode.
var ErrBadKey = errors.New("window: malformed state key")

// AppendTime appends t as 8 sortable big-endian bytes.
func AppendTime(dst []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t)^(1<<63))
}

// ParseTime decodes the first 8 bytes of b written by AppendTime.
func ParseTime(b []byte) (int64, error) {
	if len(b) < timeLen {
		return 0, fmt.Errorf("%w: %d bytes for a time", ErrBadKey, len(b))
	}
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), nil
}

func appendRecordKey(dst, key []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(key)))
	return append(dst, key...)
}

// StateKey is the key of the accumulators of window start for record key.
func StateKey(key []byte, start int64) []byte {
	return AppendTime(keyPrefix(famState, key), start)
}

// appendStateKey appends StateKey(key, start) to dst.
func appendStateKey(dst, key []byte, start int64) []byte {
	return AppendTime(appendRecordKey(append(dst, famState), key), start)
}

// StateKeyPrefix is the prefix of every StateKey of one record key; scan
// [prefix, PrefixEnd(prefix)) to visit its windows by start.
func StateKeyPrefix(key []byte) []byte { return keyPrefix(famState, key) }

// keyPrefix is the prefix of the keys of family fam ('s' or 't') for one
// record key.
func keyPrefix(fam byte, key []byte) []byte {
	return appendRecordKey(append(make([]byte, 0, 1+keyLenLen+len(key)+timeLen), fam), key)
}

// ParseStateKey splits a StateKey (or a closed-session key, which has the
// same layout) into record key and window start.
func ParseStateKey(k []byte) (key []byte, start int64, err error) {
	if len(k) < 1+keyLenLen+timeLen {
		return nil, 0, fmt.Errorf("%w: %d bytes", ErrBadKey, len(k))
	}
	n := int(binary.BigEndian.Uint32(k[1:]))
	if len(k) != 1+keyLenLen+n+timeLen {
		return nil, 0, fmt.Errorf("%w: key length %d in %d bytes", ErrBadKey, n, len(k))
	}
	key = k[1+keyLenLen : 1+keyLenLen+n]
	start, err = ParseTime(k[1+keyLenLen+n:])
	return key, start, err
}

// CloseKey is the close-index key of window w of record key. The index sorts
// by end first, so windows due to close are a prefix of the family.
func CloseKey(w Window, key []byte) []byte {
	return closeKey(famClose, w.End, key, w.Start)
}

func closeKey(fam byte, at int64, key []byte, start int64) []byte {
	return appendCloseKey(make([]byte, 0, 1+timeLen+keyLenLen+len(key)+timeLen), fam, at, key, start)
}

func appendCloseKey(dst []byte, fam byte, at int64, key []byte, start int64) []byte {
	dst = AppendTime(append(dst, fam), at)
	return AppendTime(appendRecordKey(dst, key), start)
}

// ParseCloseKey splits a CloseKey (or a closed-session expiry key) into its
// time (end or expiry), record key and window start.
func ParseCloseKey(k []byte) (at int64, key []byte, start int64, err error) {
	if len(k) < 1+timeLen+keyLenLen+timeLen {
		return 0, nil, 0, fmt.Errorf("%w: %d bytes", ErrBadKey, len(k))
	}
	at, _ = ParseTime(k[1:])
	n := int(binary.BigEndian.Uint32(k[1+timeLen:]))
	if len(k) != 1+timeLen+keyLenLen+n+timeLen {
		return 0, nil, 0, fmt.Errorf("%w: key length %d in %d bytes", ErrBadKey, n, len(k))
	}
	key = k[1+timeLen+keyLenLen : 1+timeLen+keyLenLen+n]
	start, err = ParseTime(k[1+timeLen+keyLenLen+n:])
	return at, key, start, err
}

// PrefixEnd returns the smallest key greater than every key with prefix p
// (nil when there is none).
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

func metaKey(name string) []byte { return append([]byte{famMeta}, name...) }

// deleteFamily deletes every key of family fam from s: an index an earlier
// version kept in the store and this one keeps in memory.
func deleteFamily(s Store, fam byte) error {
	var keys [][]byte
	if err := s.Scan([]byte{fam}, []byte{fam + 1}, func(k, _ []byte) error {
		keys = append(keys, slices.Clone(k))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
