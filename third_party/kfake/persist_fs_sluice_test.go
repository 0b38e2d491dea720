package kfake

// Tests of the Sluice patch to memFS (see SLUICE.md): files kept in chunks.
// Run by `make test` (cd third_party/kfake && go test).

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// TestMemFileChunks writes a file across chunk boundaries in uneven
// pieces, as segments are written batch by batch, and checks every way it
// is read back against the same bytes kept in one slice.
func TestMemFileChunks(t *testing.T) {
	fsys := newMemFS()
	f, err := fsys.OpenFile("/seg", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	for i := 0; len(want) < 3*memChunk+12345; i++ {
		b := bytes.Repeat([]byte{byte(i)}, 1+i*977%70000)
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		want = append(want, b...)
	}
	check := func(what string, want []byte) {
		t.Helper()
		got, err := fsys.ReadFile("/seg")
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: ReadFile: %d bytes (%v), want %d, equal %v", what, len(got), err, len(want), bytes.Equal(got, want))
		}
		if st, err := fsys.Stat("/seg"); err != nil || st.Size() != int64(len(want)) {
			t.Fatalf("%s: Stat: %v, %v, want size %d", what, st, err, len(want))
		}
		r, err := fsys.OpenFile("/seg", os.O_RDONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Reads of an odd size cross the chunk boundaries at every offset.
		if _, err := r.Seek(int64(memChunk-5), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		var read []byte
		buf := make([]byte, 4099)
		for {
			n, err := r.Read(buf)
			read = append(read, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if from := min(memChunk-5, len(want)); !bytes.Equal(read, want[from:]) {
			t.Fatalf("%s: reading from %d: %d bytes, want %d", what, from, len(read), len(want)-from)
		}
	}
	check("written", want)

	// Truncating into the middle of a chunk, then growing the file again,
	// by Truncate and by a write past the end, reads zeros in between.
	size := int64(2*memChunk + 100)
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	want = want[:size]
	check("truncated", want)
	if err := f.Truncate(size + 50); err != nil {
		t.Fatal(err)
	}
	want = append(want, make([]byte, 50)...)
	check("extended", want)
	w, err := fsys.OpenFile("/seg", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Seek(int64(len(want))+memChunk, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("tail")); err != nil {
		t.Fatal(err)
	}
	want = append(append(want, make([]byte, memChunk)...), "tail"...)
	check("written past the end", want)
	if end, err := w.Seek(0, io.SeekEnd); err != nil || end != int64(len(want)) {
		t.Fatalf("Seek to the end: %d, %v, want %d", end, err, len(want))
	}

	// O_TRUNC empties it.
	if _, err := fsys.OpenFile("/seg", os.O_WRONLY|os.O_TRUNC, 0); err != nil {
		t.Fatal(err)
	}
	check("opened with O_TRUNC", nil)
}

// TestMemFileSmall: a small file takes about its size, not a whole chunk
// (kfake keeps an index file and a segment per partition written).
func TestMemFileSmall(t *testing.T) {
	fsys := newMemFS()
	f, err := fsys.OpenFile("/idx", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := f.Write(make([]byte, 17)); err != nil {
			t.Fatal(err)
		}
	}
	d := fsys.files["/idx"]
	if len(d.chunks) != 1 || len(d.chunks[0]) > 1024 {
		t.Fatalf("170 bytes are kept in %d chunks, the first of %d bytes", len(d.chunks), len(d.chunks[0]))
	}
}
