package geofence

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Geometry. Coordinates are [lon, lat] degrees (GeoJSON order). Polygon
// edges are straight lines in longitude/latitude, as RFC 7946 §3.1.1 has
// them; circles are a centre and a radius in metres on a sphere.
//
// Zones crossing the antimeridian may be written either way: cut in two
// (a MultiPolygon, as RFC 7946 §3.1.9 recommends) or as one ring whose
// longitudes jump by more than 180° between two vertices (170 to -170).
// Each ring is unwrapped (a vertex more than 180° of longitude from the one
// before it is moved by 360°), and a point is tested at its longitude and
// at that longitude ± 360°.
//
// The boundary rule: a zone is a closed set. A point on an edge or a vertex
// of an outer ring, or on the edge of a hole, is inside the zone; a point
// strictly inside a hole is not. "On" allows for rounding: within 1e-9° of
// the edge (about 0.1 mm).

const earthRadius = 6371008.8 // metres, the mean radius

const onEdgeEps = 1e-9 // degrees

type pt struct{ x, y float64 } // lon, lat

type ring []pt

type polygon struct {
	outer ring
	holes []ring
}

// zone is one named zone: polygons, or a circle when radius > 0.
type zone struct {
	id     string
	polys  []polygon
	center pt
	radius float64
	// bbox in unwrapped degrees (minX may be < -180 or maxX > 180).
	minX, minY, maxX, maxY float64
}

// unwrap moves each vertex by 360° when it is more than 180° of longitude
// from the vertex before it, then moves the whole ring by a multiple of
// 360° so that its first vertex is within 180° of ref.
func unwrap(r ring, ref float64) ring {
	out := make(ring, len(r))
	for i, p := range r {
		if i > 0 {
			for p.x-out[i-1].x > 180 {
				p.x -= 360
			}
			for p.x-out[i-1].x < -180 {
				p.x += 360
			}
		}
		out[i] = p
	}
	shift := 0.0
	for out[0].x+shift-ref > 180 {
		shift -= 360
	}
	for out[0].x+shift-ref < -180 {
		shift += 360
	}
	if shift != 0 {
		for i := range out {
			out[i].x += shift
		}
	}
	return out
}

// onSegment reports whether p is within onEdgeEps of the segment ab.
func onSegment(a, b, p pt) bool {
	if p.x < min(a.x, b.x)-onEdgeEps || p.x > max(a.x, b.x)+onEdgeEps ||
		p.y < min(a.y, b.y)-onEdgeEps || p.y > max(a.y, b.y)+onEdgeEps {
		return false
	}
	dx, dy := b.x-a.x, b.y-a.y
	l := math.Hypot(dx, dy)
	if l == 0 {
		return math.Hypot(p.x-a.x, p.y-a.y) <= onEdgeEps
	}
	return math.Abs(dx*(p.y-a.y)-dy*(p.x-a.x))/l <= onEdgeEps
}

// locate reports whether p is inside r and whether it is on r's boundary.
// Inside uses the crossing rule (even-odd) with half-open edges, so a ray
// through a vertex counts once.
func (r ring) locate(p pt) (inside, edge bool) {
	n := len(r)
	for i, j := 0, n-1; i < n; j, i = i, i+1 {
		a, b := r[j], r[i]
		if onSegment(a, b, p) {
			return true, true
		}
		if (a.y > p.y) != (b.y > p.y) {
			x := a.x + (p.y-a.y)*(b.x-a.x)/(b.y-a.y)
			if p.x < x {
				inside = !inside
			}
		}
	}
	return inside, false
}

func (pg *polygon) contains(p pt) bool {
	in, _ := pg.outer.locate(p)
	if !in {
		return false
	}
	for _, h := range pg.holes {
		if hin, hedge := h.locate(p); hin && !hedge {
			return false
		}
	}
	return true
}

// contains reports whether p (with its longitude already moved next to the
// zone's) is in z.
func (z *zone) contains(p pt) bool {
	if z.radius > 0 {
		return haversine(p, z.center) <= z.radius
	}
	for i := range z.polys {
		if z.polys[i].contains(p) {
			return true
		}
	}
	return false
}

// edgeDistance returns the distance in metres from p to z's boundary (the
// nearest edge of any ring, or the circle).
func (z *zone) edgeDistance(p pt) float64 {
	if z.radius > 0 {
		return math.Abs(haversine(p, z.center) - z.radius)
	}
	// A local equirectangular projection around p: good to well under 1%
	// for the distances hysteresis is about (metres to kilometres).
	kx := earthRadius * math.Pi / 180 * math.Cos(p.y*math.Pi/180)
	ky := earthRadius * math.Pi / 180
	best := math.Inf(1)
	seg := func(r ring) {
		for i, j := 0, len(r)-1; i < len(r); j, i = i, i+1 {
			ax, ay := (r[j].x-p.x)*kx, (r[j].y-p.y)*ky
			bx, by := (r[i].x-p.x)*kx, (r[i].y-p.y)*ky
			dx, dy := bx-ax, by-ay
			t := 0.0
			if l2 := dx*dx + dy*dy; l2 > 0 {
				t = math.Max(0, math.Min(1, -(ax*dx+ay*dy)/l2))
			}
			best = math.Min(best, math.Hypot(ax+t*dx, ay+t*dy))
		}
	}
	for _, pg := range z.polys {
		seg(pg.outer)
		for _, h := range pg.holes {
			seg(h)
		}
	}
	return best
}

// near moves p's longitude by a multiple of 360° to the copy that lies in
// z's bounding box grown by margin degrees, if any.
func (z *zone) near(p pt, mx, my float64) (pt, bool) {
	if p.y < z.minY-my || p.y > z.maxY+my {
		return p, false
	}
	for _, dx := range [...]float64{0, 360, -360} {
		q := pt{p.x + dx, p.y}
		if q.x >= z.minX-mx && q.x <= z.maxX+mx {
			return q, true
		}
	}
	return p, false
}

func haversine(a, b pt) float64 {
	const rad = math.Pi / 180
	dLat := (b.y - a.y) * rad
	dLon := (b.x - a.x) * rad
	s := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.y*rad)*math.Cos(b.y*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadius * math.Asin(math.Min(1, math.Sqrt(s)))
}

// --- GeoJSON ---

type geoFeature struct {
	Type       string          `json:"type"`
	ID         any             `json:"id"`
	Properties map[string]any  `json:"properties"`
	Geometry   *geoGeometry    `json:"geometry"`
	Features   []geoFeature    `json:"features"`
	Coords     json.RawMessage `json:"coordinates"`
}

type geoGeometry struct {
	Type   string          `json:"type"`
	Coords json.RawMessage `json:"coordinates"`
}

// parseZones reads a GeoJSON FeatureCollection (or one Feature) of Polygon,
// MultiPolygon and Point features; a Point needs a radius property (metres)
// and is a circle. The zone's id is the idProp property, else the feature's
// id. Features with the same id are one zone.
func parseZones(data []byte, idProp string) ([]*zone, error) {
	var root geoFeature
	if err := json.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("not GeoJSON: %v", err)
	}
	var feats []geoFeature
	switch root.Type {
	case "FeatureCollection":
		feats = root.Features
	case "Feature":
		feats = []geoFeature{root}
	default:
		return nil, fmt.Errorf("expected a GeoJSON FeatureCollection or Feature, got type %q", root.Type)
	}
	byID := map[string]*zone{}
	var order []string
	for i, f := range feats {
		id, err := featureID(f, idProp)
		if err != nil {
			return nil, fmt.Errorf("feature %d: %v", i, err)
		}
		if f.Geometry == nil {
			return nil, fmt.Errorf("feature %d (%s): no geometry", i, id)
		}
		z := byID[id]
		if z == nil {
			z = &zone{id: id}
			byID[id] = z
			order = append(order, id)
		}
		if err := z.add(f); err != nil {
			return nil, fmt.Errorf("feature %d (%s): %v", i, id, err)
		}
	}
	if len(order) == 0 {
		return nil, errors.New("no zones: the collection has no features")
	}
	sort.Strings(order)
	out := make([]*zone, len(order))
	for i, id := range order {
		out[i] = byID[id]
		out[i].bounds()
	}
	return out, nil
}

func featureID(f geoFeature, idProp string) (string, error) {
	v, ok := f.Properties[idProp]
	if !ok || v == nil {
		v = f.ID
	}
	switch t := v.(type) {
	case string:
		if t != "" {
			return t, nil
		}
	case float64:
		return fmt.Sprint(t), nil
	}
	return "", fmt.Errorf("no zone id: set properties.%s (or the feature's id) to a string", idProp)
}

func (z *zone) add(f geoFeature) error {
	g := f.Geometry
	switch g.Type {
	case "Polygon":
		var rings [][][]float64
		if err := json.Unmarshal(g.Coords, &rings); err != nil {
			return fmt.Errorf("polygon coordinates: %v", err)
		}
		pg, err := newPolygon(rings)
		if err != nil {
			return err
		}
		z.polys = append(z.polys, pg)
	case "MultiPolygon":
		var polys [][][][]float64
		if err := json.Unmarshal(g.Coords, &polys); err != nil {
			return fmt.Errorf("coordinates of a MultiPolygon: %v", err)
		}
		for _, rings := range polys {
			pg, err := newPolygon(rings)
			if err != nil {
				return err
			}
			z.polys = append(z.polys, pg)
		}
	case "Point":
		var c []float64
		if err := json.Unmarshal(g.Coords, &c); err != nil || len(c) < 2 {
			return errors.New("the coordinates of a Point must be [lon, lat]")
		}
		r, ok := f.Properties["radius"].(float64)
		if !ok || r <= 0 {
			return errors.New("a Point zone is a circle and needs properties.radius, in metres, > 0")
		}
		if len(z.polys) > 0 || z.radius > 0 {
			return errors.New("a circle zone must be the zone's only feature")
		}
		if err := checkPos(c[0], c[1]); err != nil {
			return err
		}
		z.center, z.radius = pt{c[0], c[1]}, r
	default:
		return fmt.Errorf("geometry type %q is not a zone: use Polygon, MultiPolygon or a Point with a radius", g.Type)
	}
	if z.radius > 0 && len(z.polys) > 0 {
		return errors.New("a circle zone must be the zone's only feature")
	}
	return nil
}

func checkPos(lon, lat float64) error {
	if math.IsNaN(lon) || math.IsNaN(lat) || lat < -90 || lat > 90 || lon < -540 || lon > 540 {
		return fmt.Errorf("position [%v, %v] is not a longitude and latitude", lon, lat)
	}
	return nil
}

func newPolygon(rings [][][]float64) (polygon, error) {
	var pg polygon
	if len(rings) == 0 {
		return pg, errors.New("a polygon needs an outer ring")
	}
	ref := 0.0
	for i, rc := range rings {
		r := make(ring, 0, len(rc))
		for _, c := range rc {
			if len(c) < 2 {
				return pg, errors.New("a position needs a longitude and a latitude")
			}
			if err := checkPos(c[0], c[1]); err != nil {
				return pg, err
			}
			r = append(r, pt{c[0], c[1]})
		}
		// GeoJSON closes rings by repeating the first position.
		if len(r) > 1 && r[0] == r[len(r)-1] {
			r = r[:len(r)-1]
		}
		if len(r) < 3 {
			return pg, errors.New("a ring needs at least three distinct positions")
		}
		if i == 0 {
			ref = r[0].x
		}
		r = unwrap(r, ref)
		if i == 0 {
			pg.outer = r
		} else {
			pg.holes = append(pg.holes, r)
		}
	}
	return pg, nil
}

func (z *zone) bounds() {
	z.minX, z.minY, z.maxX, z.maxY = math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	add := func(p pt) {
		z.minX, z.maxX = math.Min(z.minX, p.x), math.Max(z.maxX, p.x)
		z.minY, z.maxY = math.Min(z.minY, p.y), math.Max(z.maxY, p.y)
	}
	if z.radius > 0 {
		dy := z.radius / earthRadius * 180 / math.Pi
		dx := 360.0
		if c := math.Cos(math.Min(89.9, math.Abs(z.center.y)+dy) * math.Pi / 180); dy < 89 {
			dx = math.Min(360, dy/c)
		}
		add(pt{z.center.x - dx, math.Max(-90, z.center.y-dy)})
		add(pt{z.center.x + dx, math.Min(90, z.center.y+dy)})
		return
	}
	for _, pg := range z.polys {
		for _, p := range pg.outer {
			add(p)
		}
	}
}

// --- index ---

// index finds the zones whose bounding box, grown by the hysteresis
// margin, holds a point: a uniform grid of cells around the globe, each
// listing the zones overlapping it. Zones too large for the grid are
// checked for every point.
type index struct {
	zones  []*zone
	cell   float64 // degrees
	nx     int     // cells around the globe
	grid   map[[2]int32][]int32
	always []int32
	mx, my float64 // margin in degrees
}

const maxCellsPerZone = 4096

func newIndex(zones []*zone, margin float64) *index {
	ix := &index{zones: zones, grid: map[[2]int32][]int32{}}
	ix.my = margin / earthRadius * 180 / math.Pi
	ix.mx = ix.my / math.Cos(80*math.Pi/180) // generous: holds to 80° latitude
	// Cells about the size of a typical zone.
	ext := make([]float64, len(zones))
	for i, z := range zones {
		ext[i] = math.Max(z.maxX-z.minX, z.maxY-z.minY) + 2*ix.mx
	}
	slices.Sort(ext)
	// A whole number of cells around the globe, so that columns wrap at
	// the antimeridian.
	ix.nx = int(math.Ceil(360 / math.Min(10, math.Max(0.001, ext[len(ext)/2]))))
	ix.cell = 360 / float64(ix.nx)
	for i, z := range zones {
		x0, x1 := ix.col(z.minX-ix.mx), ix.col(z.maxX+ix.mx)
		y0, y1 := ix.row(z.minY-ix.my), ix.row(z.maxY+ix.my)
		if (x1-x0+1)*(y1-y0+1) > maxCellsPerZone || x1-x0+1 >= ix.nx {
			ix.always = append(ix.always, int32(i))
			continue
		}
		for x := x0; x <= x1; x++ {
			wx := ((x % ix.nx) + ix.nx) % ix.nx
			for y := y0; y <= y1; y++ {
				k := [2]int32{int32(wx), int32(y)}
				ix.grid[k] = append(ix.grid[k], int32(i))
			}
		}
	}
	return ix
}

func (ix *index) col(lon float64) int { return int(math.Floor((lon + 180) / ix.cell)) }
func (ix *index) row(lat float64) int { return int(math.Floor((lat + 90) / ix.cell)) }

// candidates calls fn for each zone whose grown bounding box may hold p, in
// no particular order; fn gets p moved next to the zone's longitudes.
func (ix *index) candidates(p pt, fn func(i int, q pt)) {
	wx := ((ix.col(p.x) % ix.nx) + ix.nx) % ix.nx
	for _, i := range ix.grid[[2]int32{int32(wx), int32(ix.row(p.y))}] {
		if q, ok := ix.zones[i].near(p, ix.mx, ix.my); ok {
			fn(int(i), q)
		}
	}
	for _, i := range ix.always {
		if q, ok := ix.zones[i].near(p, ix.mx, ix.my); ok {
			fn(int(i), q)
		}
	}
}
