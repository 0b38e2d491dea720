package geofence

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// star returns a simple, usually concave polygon around (cx, cy): n
// vertices at increasing angles and random radii in [rmin, rmax], on a grid
// of 1/8 degree so that points can fall exactly on edges and vertices.
func star(rng *rand.Rand, cx, cy, rmin, rmax float64, n int) [][]float64 {
	var out [][]float64
	for i := range n {
		a := 2 * math.Pi * (float64(i) + 0.8*rng.Float64()) / float64(n)
		r := rmin + (rmax-rmin)*rng.Float64()
		out = append(out, []float64{snap(cx + r*math.Cos(a)), snap(cy + r*math.Sin(a))})
	}
	return append(out, out[0])
}

func snap(x float64) float64 { return math.Round(x*8) / 8 }

// square returns a square ring, clockwise for a hole.
func square(cx, cy, s float64) [][]float64 {
	return [][]float64{{cx - s, cy - s}, {cx - s, cy + s}, {cx + s, cy + s}, {cx + s, cy - s}, {cx - s, cy - s}}
}

func rat(x float64) *big.Rat { return new(big.Rat).SetFloat64(x) }

// exactLocate is the oracle: the even-odd rule and the on-edge test in
// exact rational arithmetic.
func exactLocate(r [][]float64, x, y float64) (inside, edge bool) {
	px, py := rat(x), rat(y)
	n := len(r) - 1 // closed ring
	for i, j := 0, n-1; i < n; j, i = i, i+1 {
		ax, ay, bx, by := rat(r[j][0]), rat(r[j][1]), rat(r[i][0]), rat(r[i][1])
		// cross = (b-a) x (p-a)
		cross := new(big.Rat).Sub(
			new(big.Rat).Mul(new(big.Rat).Sub(bx, ax), new(big.Rat).Sub(py, ay)),
			new(big.Rat).Mul(new(big.Rat).Sub(by, ay), new(big.Rat).Sub(px, ax)))
		if cross.Sign() == 0 &&
			px.Cmp(minR(ax, bx)) >= 0 && px.Cmp(maxR(ax, bx)) <= 0 &&
			py.Cmp(minR(ay, by)) >= 0 && py.Cmp(maxR(ay, by)) <= 0 {
			return true, true
		}
		if (ay.Cmp(py) > 0) != (by.Cmp(py) > 0) {
			// x of the edge at py: ax + (py-ay)(bx-ax)/(by-ay)
			xi := new(big.Rat).Quo(new(big.Rat).Mul(new(big.Rat).Sub(py, ay), new(big.Rat).Sub(bx, ax)), new(big.Rat).Sub(by, ay))
			xi.Add(xi, ax)
			if px.Cmp(xi) < 0 {
				inside = !inside
			}
		}
	}
	return inside, false
}

func minR(a, b *big.Rat) *big.Rat {
	if a.Cmp(b) < 0 {
		return a
	}
	return b
}

func maxR(a, b *big.Rat) *big.Rat {
	if a.Cmp(b) > 0 {
		return a
	}
	return b
}

func exactContains(rings [][][]float64, x, y float64) bool {
	if in, _ := exactLocate(rings[0], x, y); !in {
		return false
	}
	for _, h := range rings[1:] {
		if in, edge := exactLocate(h, x, y); in && !edge {
			return false
		}
	}
	return true
}

func collection(polys map[string][][][]float64) []byte {
	var feats []any
	for id, rings := range polys {
		feats = append(feats, map[string]any{"type": "Feature", "properties": map[string]any{"id": id},
			"geometry": map[string]any{"type": "Polygon", "coordinates": rings}})
	}
	b, _ := json.Marshal(map[string]any{"type": "FeatureCollection", "features": feats})
	return b
}

// locateAll returns the ids of the zones holding (lon, lat), through the
// index as the operator finds them.
func locateAll(ix *index, lon, lat float64) map[string]bool {
	out := map[string]bool{}
	ix.candidates(pt{lon, lat}, func(i int, q pt) {
		if ix.zones[i].contains(q) {
			out[ix.zones[i].id] = true
		}
	})
	return out
}

func norm(lon float64) float64 {
	for lon >= 180 {
		lon -= 360
	}
	for lon < -180 {
		lon += 360
	}
	return lon
}

// Concave polygons with holes agree with the exact oracle on random points,
// many of them exactly on edges and vertices (grid points), and wherever the
// polygon is moved in longitude, across the antimeridian included (its
// longitudes written in [-180, 180), so its rings jump from 180 to -180).
func TestPolygonsAgainstExactOracle(t *testing.T) {
	onEdge, inside := 0, 0
	for seed := range 150 {
		rng := rand.New(rand.NewPCG(uint64(seed), 3))
		cx, cy := snap(rng.Float64()*40-20), snap(rng.Float64()*100-50)
		rings := [][][]float64{star(rng, cx, cy, 2, 6, 3+rng.IntN(12))}
		if rng.IntN(2) == 0 {
			rings = append(rings, square(cx, cy, snap(0.9*rng.Float64()+0.125)))
		}
		// Move everything by shift degrees of longitude, normalised.
		shift := snap(rng.Float64()*360 - 180)
		if rng.IntN(3) == 0 {
			shift = 180 - cx // centred on the antimeridian
		}
		moved := make([][][]float64, len(rings))
		for i, r := range rings {
			for _, p := range r {
				moved[i] = append(moved[i], []float64{norm(p[0] + shift), p[1]})
			}
		}
		zones, err := parseZones(collection(map[string][][][]float64{"z": moved}), "id")
		if err != nil {
			t.Fatal(err)
		}
		ix := newIndex(zones, 0)
		// Random grid points, and points exactly on every edge (vertices,
		// quarters: still exact in binary).
		var pts [][2]float64
		for range 100 {
			pts = append(pts, [2]float64{snap(cx + rng.Float64()*14 - 7), snap(cy + rng.Float64()*14 - 7)})
		}
		for _, r := range rings {
			for i := 0; i+1 < len(r); i++ {
				for _, f := range []float64{0, 0.25, 0.5, 0.75} {
					pts = append(pts, [2]float64{r[i][0] + f*(r[i+1][0]-r[i][0]), r[i][1] + f*(r[i+1][1]-r[i][1])})
				}
			}
		}
		for _, xy := range pts {
			x, y := xy[0], xy[1]
			want := exactContains(rings, x, y)
			if _, e := exactLocate(rings[0], x, y); e {
				onEdge++
			}
			if want {
				inside++
			}
			if got := locateAll(ix, norm(x+shift), y)["z"]; got != want {
				t.Fatalf("seed %d: point (%v, %v) moved by %v: got inside=%v, want %v\nrings %v", seed, x, y, shift, got, want, rings)
			}
		}
	}
	if onEdge < 2500 || inside < 5000 {
		t.Fatalf("the test hits too few boundary (%d) or inside (%d) points", onEdge, inside)
	}
}

// A zone cut at the antimeridian (a MultiPolygon) and the same zone as one
// ring crossing it hold the same points, and the cut line is inside.
func TestAntimeridianForms(t *testing.T) {
	cut := `{"type":"Feature","properties":{"id":"cut"},"geometry":{"type":"MultiPolygon","coordinates":[
	  [[[170,-10],[180,-10],[180,10],[170,10],[170,-10]]],
	  [[[-180,-10],[-170,-10],[-170,10],[-180,10],[-180,-10]]]]}}`
	ring := `{"type":"Feature","properties":{"id":"ring"},"geometry":{"type":"Polygon","coordinates":[
	  [[170,-10],[-170,-10],[-170,10],[170,10],[170,-10]]]}}`
	var zs []*zone
	for _, s := range []string{cut, ring} {
		z, err := parseZones([]byte(s), "id")
		if err != nil {
			t.Fatal(err)
		}
		zs = append(zs, z...)
	}
	ix := newIndex(zs, 0)
	for _, c := range []struct {
		lon, lat float64
		in       bool
	}{
		{175, 0, true}, {-175, 0, true}, {180, 0, true}, {-180, 0, true}, {179.999, 9.99, true},
		{170, 0, true}, {-170, 10, true}, {169.99, 0, false}, {-169.99, 0, false}, {0, 0, false}, {175, 10.01, false},
	} {
		got := locateAll(ix, c.lon, c.lat)
		if got["cut"] != c.in || got["ring"] != c.in {
			t.Errorf("(%v, %v): got %v, want both %v", c.lon, c.lat, got, c.in)
		}
	}
}

// Circles: great-circle distance, boundary inside, across the antimeridian.
func TestCircles(t *testing.T) {
	z, err := parseZones([]byte(`{"type":"FeatureCollection","features":[
	  {"type":"Feature","properties":{"id":"c","radius":1000},"geometry":{"type":"Point","coordinates":[179.999,0]}}]}`), "id")
	if err != nil {
		t.Fatal(err)
	}
	ix := newIndex(z, 0)
	deg := 1000 / earthRadius * 180 / math.Pi // 1 km of latitude
	for _, c := range []struct {
		lon, lat float64
		in       bool
	}{
		{179.999, deg * 0.999, true}, {179.999, deg * 1.001, false},
		{-179.999, 0, true}, // 0.002° of longitude at the equator: 222 m away
		{-179.99, 0, false}, // 1.2 km
	} {
		if got := locateAll(ix, c.lon, c.lat)["c"]; got != c.in {
			t.Errorf("(%v, %v): got %v, want %v", c.lon, c.lat, got, c.in)
		}
	}
}

// The index finds exactly what checking every zone finds.
func TestIndexAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	polys := map[string][][][]float64{}
	for i := range 500 {
		cx, cy := rng.Float64()*360-180, rng.Float64()*120-60
		r := 0.05 + rng.Float64()*2
		var ring [][]float64
		for k := range 7 {
			a := 2 * math.Pi * float64(k) / 7
			rr := r * (0.4 + 0.6*rng.Float64())
			ring = append(ring, []float64{norm(cx + rr*math.Cos(a)), cy + rr*math.Sin(a)})
		}
		polys[fmt.Sprint("z", i)] = [][][]float64{append(ring, ring[0])}
	}
	zones, err := parseZones(collection(polys), "id")
	if err != nil {
		t.Fatal(err)
	}
	ix := newIndex(zones, 0)
	hits := 0
	for range 20000 {
		lon, lat := rng.Float64()*360-180, rng.Float64()*120-60
		got := locateAll(ix, lon, lat)
		for _, z := range zones {
			want := false
			for _, dx := range []float64{0, 360, -360} {
				want = want || z.contains(pt{lon + dx, lat})
			}
			if got[z.id] != want {
				t.Fatalf("(%v, %v) zone %s: index says %v, brute force %v", lon, lat, z.id, got[z.id], want)
			}
			if want {
				hits++
			}
		}
	}
	if hits < 50 {
		t.Fatalf("only %d hits", hits)
	}
}

// Distances to the boundary in metres, used by the hysteresis.
func TestEdgeDistance(t *testing.T) {
	z, err := parseZones(collection(map[string][][][]float64{"z": {square(4.31, 52.01, 0.01)}}), "id")
	if err != nil {
		t.Fatal(err)
	}
	// 0.001° of latitude is 111.2 m.
	d := z[0].edgeDistance(pt{4.31, 52.019})
	if math.Abs(d-111.19) > 0.5 {
		t.Fatalf("distance %v, want about 111.2 m", d)
	}
}

func BenchmarkLocate10kZones(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	polys := map[string][][][]float64{}
	// 10,000 city-block to district sized polygons over Europe.
	for i := range 10000 {
		cx, cy := -10+rng.Float64()*40, 36+rng.Float64()*24
		r := 0.002 + rng.Float64()*0.05
		var ring [][]float64
		for k := range 12 {
			a := 2 * math.Pi * float64(k) / 12
			rr := r * (0.4 + 0.6*rng.Float64())
			ring = append(ring, []float64{cx + rr*math.Cos(a), cy + rr*math.Sin(a)})
		}
		polys[fmt.Sprint("z", i)] = [][][]float64{append(ring, ring[0])}
	}
	zones, err := parseZones(collection(polys), "id")
	if err != nil {
		b.Fatal(err)
	}
	ix := newIndex(zones, 0)
	pts := make([]pt, 4096)
	for i := range pts {
		pts[i] = pt{-10 + rng.Float64()*40, 36 + rng.Float64()*24}
	}
	n := 0
	b.ResetTimer()
	for i := range b.N {
		p := pts[i%len(pts)]
		ix.candidates(p, func(i int, q pt) {
			if ix.zones[i].contains(q) {
				n++
			}
		})
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
}
