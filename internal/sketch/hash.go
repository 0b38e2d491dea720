package sketch

// FNV-1a 64 constants.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

// Hash64 returns a stable 64-bit hash of b: FNV-1a 64 followed by the
// MurmurHash3 64-bit finalizer.
//
// The hash is part of the persisted format of HLL (which stores hashes and
// register values derived from them), so it must never change. FNV-1a alone
// mixes the last bytes poorly into the high bits, which HLL uses for its
// register index; the finalizer spreads every input bit over the whole word.
func Hash64(b []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return mix64(h)
}

// HashString is Hash64 of the bytes of s, without a copy.
func HashString(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return mix64(h)
}

// mix64 is the MurmurHash3 fmix64 finalizer.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
