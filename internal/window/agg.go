package window

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/sluicehq/sluice/internal/binread"
	"github.com/sluicehq/sluice/internal/record"
	"github.com/sluicehq/sluice/internal/sketch"
)

// Func names an aggregate function.
type Func string

// Aggregate functions.
const (
	Count         Func = "count"
	Sum           Func = "sum"
	Min           Func = "min"
	Max           Func = "max"
	Avg           Func = "avg"
	CountDistinct Func = "count_distinct"
	Percentiles   Func = "percentiles"
	First         Func = "first"
	Last          Func = "last"
	Collect       Func = "collect"
	TopN          Func = "top_n"
)

// Keep says which values Collect keeps.
type Keep uint8

// Collect modes.
const (
	// KeepFirst keeps the N values with the earliest event times.
	KeepFirst Keep = iota
	// KeepLast keeps the N values with the latest event times.
	KeepLast
)

// ErrType is wrapped by the errors of aggregates given an input of the
// wrong type; the operator turns it into a DLQ record with reason "type".
var ErrType = errors.New("wrong input type")

// Aggregate configures one named aggregate of a window or running
// aggregation. Inputs are decoded JSON values (int, float64, string, bool,
// nil, map[string]any, []any, record.Number); other Go numeric types are
// accepted as numbers.
//
//   - count: with Input nil, the number of records; otherwise the number of
//     non-nil inputs. Result int64.
//   - sum, min, max, avg: numbers only; anything else fails with ErrType
//     (non-finite numbers too, as they cannot be written as JSON). A sum of
//     integers is an int, exact (0 with no inputs); a sum with any float64
//     input, or one past int64's range, is a float64 sum. Min and max are
//     the input itself, int or float64; avg is a float64. Min, max and avg
//     are nil with no inputs. Sums of non-integers may differ in the last
//     bits depending on the order in which session windows merge.
//   - count_distinct: the HyperLogLog estimate (exact for small sets) of the
//     distinct inputs, compared by their JSON encoding with whole numbers
//     written without a fraction (so 1 and 1.0 are equal, "1" and 1 are
//     not). Result int64.
//   - percentiles: a quantile sketch of numeric inputs; the result maps
//     "p<percent>" (for example "p99.9") to the estimate, nil with no inputs.
//   - first, last: the input with the earliest (latest) event time; ties go
//     to the earlier (later) arrival. nil with no inputs.
//   - collect: the N inputs with the earliest (KeepFirst) or latest
//     (KeepLast) event times, ties by arrival, as a list in event-time order.
//   - top_n: the N inputs with the largest By value (a number), as a list in
//     descending order; ties are stable (the earlier arrival ranks higher).
//     Records whose By value is nil are skipped; a non-number fails with
//     ErrType.
//
// Every aggregate skips nil inputs. Values kept by first, last, collect and
// top_n are stored as JSON and come back as decoded JSON, numbers of the
// same kind (record.EncodeJSON and record.DecodeJSON).
type Aggregate struct {
	Name string
	Func Func
	// Input extracts the aggregated value from a record value; nil means
	// the record value itself.
	Input func(value any) (any, error)
	// By extracts the ranking number for top_n (required there, unused
	// elsewhere).
	By func(value any) (any, error)
	// N is the number of values collect and top_n keep (>= 1).
	N int
	// Keep selects the values collect keeps.
	Keep Keep
	// Precision is the count_distinct HLL precision (0: the sketch default,
	// 14, about 0.8% error).
	Precision uint8
	// RelativeAccuracy is the percentiles sketch accuracy (0: 1%).
	RelativeAccuracy float64
	// Percents lists the percentiles to report, each in [0, 100].
	Percents []float64
}

// Input is one value offered to an accumulator.
type Input struct {
	// Value is the extracted input; nil is skipped.
	Value any
	// Rank is the top_n ranking value.
	Rank any
	// Time is the record's event time and Seq its arrival sequence number;
	// they order first, last, collect and top_n ties.
	Time int64
	Seq  uint64
}

// Accumulator is the running state of one aggregate over one window.
// Accumulators of the same Aggregate merge (for session windows) and
// encode to bytes that Aggregate.Decode reads back.
type Accumulator interface {
	// Add adds one input. On error the accumulator is unchanged.
	Add(in Input) error
	// Merge adds everything o holds; o must come from the same Aggregate.
	Merge(o Accumulator) error
	// Result is the aggregate's current value, as a JSON-encodable value.
	Result() any
	// AppendBinary appends the accumulator's encoding to dst.
	AppendBinary(dst []byte) ([]byte, error)
}

// Validate checks the configuration.
func (a *Aggregate) Validate() error {
	if a.Name == "" {
		return fmt.Errorf("window: aggregate %q has no name", a.Func)
	}
	switch a.Func {
	case Count, Sum, Min, Max, Avg, First, Last:
	case CountDistinct:
		if _, err := sketch.NewHLL(a.Precision); err != nil {
			return fmt.Errorf("window: aggregate %s: %w", a.Name, err)
		}
	case Percentiles:
		if _, err := sketch.NewQuantiles(a.RelativeAccuracy, 0); err != nil {
			return fmt.Errorf("window: aggregate %s: %w", a.Name, err)
		}
		if len(a.Percents) == 0 {
			return fmt.Errorf("window: aggregate %s: percentiles needs at least one percent", a.Name)
		}
		for _, p := range a.Percents {
			if !(p >= 0 && p <= 100) {
				return fmt.Errorf("window: aggregate %s: percent %v outside [0, 100]", a.Name, p)
			}
		}
	case Collect, TopN:
		if a.N < 1 {
			return fmt.Errorf("window: aggregate %s: %s needs N >= 1", a.Name, a.Func)
		}
		if a.Func == TopN && a.By == nil {
			return fmt.Errorf("window: aggregate %s: top_n needs By", a.Name)
		}
		if a.Func == Collect && a.Keep != KeepFirst && a.Keep != KeepLast {
			return fmt.Errorf("window: aggregate %s: unknown keep mode %d", a.Name, a.Keep)
		}
	default:
		return fmt.Errorf("window: aggregate %s: unknown function %q", a.Name, a.Func)
	}
	return nil
}

// Extract builds the Input of a record value for this aggregate.
func (a *Aggregate) Extract(value any, t int64, seq uint64) (Input, error) {
	in := Input{Value: value, Time: t, Seq: seq}
	if a.Input != nil {
		v, err := a.Input(value)
		if err != nil {
			return in, err
		}
		in.Value = v
	}
	if a.Func == TopN {
		r, err := a.By(value)
		if err != nil {
			return in, err
		}
		in.Rank = r
	}
	return in, nil
}

// New returns an empty accumulator. The Aggregate must be valid.
func (a *Aggregate) New() (Accumulator, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a.newAcc()
}

// newAcc is New for an Aggregate already validated, as an Operator's are:
// validating a count_distinct or percentiles aggregate builds a sketch.
func (a *Aggregate) newAcc() (Accumulator, error) {
	switch a.Func {
	case Count:
		return &countAcc{all: a.Input == nil}, nil
	case Sum, Avg:
		return &sumAcc{avg: a.Func == Avg, ints: true}, nil
	case Min, Max:
		return &extremeAcc{max: a.Func == Max}, nil
	case CountDistinct:
		h, _ := sketch.NewHLL(a.Precision)
		return &distinctAcc{h: h}, nil
	case Percentiles:
		q, _ := sketch.NewQuantiles(a.RelativeAccuracy, 0)
		return &percentAcc{q: q, percents: a.Percents}, nil
	case First, Last:
		return &pickAcc{last: a.Func == Last}, nil
	case Collect:
		return &collectAcc{n: a.N, last: a.Keep == KeepLast}, nil
	case TopN:
		return &collectAcc{n: a.N, top: true}, nil
	}
	return nil, fmt.Errorf("window: unknown function %q", a.Func)
}

// Decode reads an accumulator written by AppendBinary of an accumulator of
// the same Aggregate.
func (a *Aggregate) Decode(b []byte) (Accumulator, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return a.decode(b)
}

// decode is Decode for an Aggregate already validated.
func (a *Aggregate) decode(b []byte) (Accumulator, error) {
	acc, err := a.newAcc()
	if err != nil {
		return nil, err
	}
	d := decoder{B: b}
	tag := d.Uvarint()
	switch k, isKinded := acc.(kinded); {
	case isKinded && tag == uint64(funcTag(a.Func))|kindsTag:
	case tag == uint64(funcTag(a.Func)):
		if isKinded {
			k.setLegacy()
		}
	default:
		return nil, fmt.Errorf("window: aggregate %s: stored accumulator has tag %d, want %d", a.Name, tag, funcTag(a.Func))
	}
	acc.(decodable).decode(&d)
	if d.Err == nil && len(d.B) != 0 {
		d.Err = fmt.Errorf("%d trailing bytes", len(d.B))
	}
	if d.Err != nil {
		return nil, fmt.Errorf("window: aggregate %s: corrupt accumulator: %w", a.Name, d.Err)
	}
	return acc, nil
}

type decodable interface{ decode(d *decoder) }

// kindsTag is added to the tag of sum, avg, min and max accumulators that
// record whether their numbers are integers. Their tag without it marks
// state written before ints existed, which is read as float64s.
const kindsTag = 0x40

// kinded is an accumulator whose encoding has the kindsTag form.
type kinded interface{ setLegacy() }

// funcTag is the persisted identity of a function, checked on decode so
// that state written by another aggregate is not misread.
func funcTag(f Func) uint8 {
	return uint8(slices.Index([]Func{Count, Sum, Min, Max, Avg, CountDistinct, Percentiles, First, Last, Collect, TopN}, f) + 1)
}

// number converts a numeric input to float64 and, when it is an integer
// that fits an int64, also gives it exactly.
func number(f Func, v any) (x float64, i int64, isInt bool, err error) {
	switch n := v.(type) {
	case int:
		return float64(n), int64(n), true, nil
	case float64:
		x = n
	case int64:
		return float64(n), n, true, nil
	case int32:
		return float64(n), int64(n), true, nil
	case int16:
		return float64(n), int64(n), true, nil
	case int8:
		return float64(n), int64(n), true, nil
	case uint8:
		return float64(n), int64(n), true, nil
	case uint16:
		return float64(n), int64(n), true, nil
	case uint32:
		return float64(n), int64(n), true, nil
	case uint:
		if uint64(n) <= math.MaxInt64 {
			return float64(n), int64(n), true, nil
		}
		x = float64(n)
	case uint64:
		if n <= math.MaxInt64 {
			return float64(n), int64(n), true, nil
		}
		x = float64(n)
	case float32:
		x = float64(n)
	case json.Number: // record.Number: an integer beyond int64
		if x, err = n.Float64(); err != nil {
			return 0, 0, false, fmt.Errorf("%w: %s needs a number, got %s", ErrType, f, record.Describe(v))
		}
	default:
		return 0, 0, false, fmt.Errorf("%w: %s needs a number, got %s", ErrType, f, record.Describe(v))
	}
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, 0, false, fmt.Errorf("%w: %s needs a finite number, got %v", ErrType, f, x)
	}
	return x, 0, false, nil
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a bool"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%T", v)
}

// encodeJSON stores a kept value; decodeJSON gives it back with numbers of
// the same kind (state written before ints existed holds whole floats
// without a fraction, which come back as ints).
func encodeJSON(f Func, v any) ([]byte, error) {
	b, err := record.EncodeJSON(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s cannot store %s: %v", ErrType, f, typeName(v), err)
	}
	return b, nil
}

func decodeJSON(b []byte) any {
	v, err := record.DecodeJSON(b)
	if err != nil {
		// Only bytes written by encodeJSON are stored; Decode validates.
		return nil
	}
	return v
}

// distinctJSON is what count_distinct hashes: encoding/json's encoding,
// which writes 1 and 1.0 alike (so they count once, as they did before
// ints existed, and stored sketches stay valid).
func distinctJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %s cannot store %s: %v", ErrType, CountDistinct, typeName(v), err)
	}
	return b, nil
}

func mismatch(a, b Accumulator) error {
	return fmt.Errorf("window: merging accumulators %T and %T", a, b)
}

// countAcc counts records (all) or non-nil inputs.
type countAcc struct {
	all bool
	n   int64
}

func (c *countAcc) Add(in Input) error {
	if c.all || in.Value != nil {
		c.n++
	}
	return nil
}

func (c *countAcc) Merge(o Accumulator) error {
	x, ok := o.(*countAcc)
	if !ok {
		return mismatch(c, o)
	}
	c.n += x.n
	return nil
}

func (c *countAcc) Result() any { return c.n }

func (c *countAcc) AppendBinary(dst []byte) ([]byte, error) {
	return binary.AppendUvarint(binary.AppendUvarint(dst, uint64(funcTag(Count))), uint64(c.n)), nil
}

func (c *countAcc) decode(d *decoder) { c.n = int64(d.Uvarint()) }

// sumAcc serves sum and avg. While every input is an integer the sum is
// kept exactly too (isum), so that a sum of integers is an integer, as in
// expressions; sum always holds the float64 sum for the rest.
type sumAcc struct {
	avg    bool
	sum    float64
	n      int64
	ints   bool // every input an integer, and isum their exact sum
	isum   int64
	legacy bool // decoding state written before ints existed
}

func (s *sumAcc) setLegacy() { s.legacy = true }

func (s *sumAcc) fn() Func {
	if s.avg {
		return Avg
	}
	return Sum
}

func (s *sumAcc) Add(in Input) error {
	if in.Value == nil {
		return nil
	}
	x, i, isInt, err := number(s.fn(), in.Value)
	if err != nil {
		return err
	}
	s.sum += x
	s.n++
	s.addInt(isInt, i)
	return nil
}

// addInt adds i to the exact sum, which ends at the first input that is
// not an integer or the first overflow.
func (s *sumAcc) addInt(isInt bool, i int64) {
	if !s.ints {
		return
	}
	t := s.isum + i
	if !isInt || (i > 0 && t < s.isum) || (i < 0 && t > s.isum) {
		s.ints = false
		return
	}
	s.isum = t
}

func (s *sumAcc) Merge(o Accumulator) error {
	x, ok := o.(*sumAcc)
	if !ok || x.avg != s.avg {
		return mismatch(s, o)
	}
	s.sum += x.sum
	s.n += x.n
	s.addInt(x.ints, x.isum)
	return nil
}

func (s *sumAcc) Result() any {
	if !s.avg {
		if s.ints {
			return int(s.isum)
		}
		return s.sum
	}
	if s.n == 0 {
		return nil
	}
	return s.sum / float64(s.n)
}

func (s *sumAcc) AppendBinary(dst []byte) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(funcTag(s.fn()))|kindsTag)
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(s.sum))
	dst = binary.AppendUvarint(dst, uint64(s.n))
	if !s.ints {
		return append(dst, 0), nil
	}
	return binary.AppendVarint(append(dst, 1), s.isum), nil
}

func (s *sumAcc) decode(d *decoder) {
	s.sum = d.Float64()
	s.n = int64(d.Uvarint())
	if s.legacy {
		s.ints = s.n == 0 // a float64 sum, unless empty
		return
	}
	if s.ints = d.Bool(); s.ints {
		s.isum = d.Varint()
	}
}

// extremeAcc serves min and max. The extreme input is kept with its kind:
// an integer exactly (i, isInt), v its float64 value for comparisons.
type extremeAcc struct {
	max    bool
	has    bool
	v      float64
	isInt  bool
	i      int64
	legacy bool // decoding state written before ints existed
}

func (e *extremeAcc) setLegacy() { e.legacy = true }

func (e *extremeAcc) fn() Func {
	if e.max {
		return Max
	}
	return Min
}

func (e *extremeAcc) Add(in Input) error {
	if in.Value == nil {
		return nil
	}
	x, i, isInt, err := number(e.fn(), in.Value)
	if err != nil {
		return err
	}
	e.offer(x, isInt, i)
	return nil
}

func (e *extremeAcc) offer(x float64, isInt bool, i int64) {
	var better bool
	switch {
	case !e.has:
		better = true
	case isInt && e.isInt: // exactly, beyond 2^53 too
		better = (e.max && i > e.i) || (!e.max && i < e.i)
	default:
		better = (e.max && x > e.v) || (!e.max && x < e.v)
	}
	if better {
		e.v, e.isInt, e.i, e.has = x, isInt, i, true
	}
}

func (e *extremeAcc) Merge(o Accumulator) error {
	x, ok := o.(*extremeAcc)
	if !ok || x.max != e.max {
		return mismatch(e, o)
	}
	if x.has {
		e.offer(x.v, x.isInt, x.i)
	}
	return nil
}

func (e *extremeAcc) Result() any {
	if !e.has {
		return nil
	}
	if e.isInt {
		return int(e.i)
	}
	return e.v
}

func (e *extremeAcc) AppendBinary(dst []byte) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(funcTag(e.fn()))|kindsTag)
	if !e.has {
		return append(dst, 0), nil
	}
	dst = binary.BigEndian.AppendUint64(append(dst, 1), math.Float64bits(e.v))
	if !e.isInt {
		return append(dst, 0), nil
	}
	return binary.AppendVarint(append(dst, 1), e.i), nil
}

func (e *extremeAcc) decode(d *decoder) {
	if d.Bool() {
		e.has, e.v = true, d.Float64()
		if e.legacy {
			return // a float64
		}
		if e.isInt = d.Bool(); e.isInt {
			e.i = d.Varint()
		}
	}
}

// distinctAcc is count_distinct over the JSON encoding of inputs.
type distinctAcc struct{ h *sketch.HLL }

func (c *distinctAcc) Add(in Input) error {
	if in.Value == nil {
		return nil
	}
	b, err := distinctJSON(in.Value)
	if err != nil {
		return err
	}
	c.h.AddBytes(b)
	return nil
}

func (c *distinctAcc) Merge(o Accumulator) error {
	x, ok := o.(*distinctAcc)
	if !ok {
		return mismatch(c, o)
	}
	return c.h.Merge(x.h)
}

func (c *distinctAcc) Result() any { return int64(c.h.Estimate()) }

func (c *distinctAcc) AppendBinary(dst []byte) ([]byte, error) {
	return c.h.AppendBinary(binary.AppendUvarint(dst, uint64(funcTag(CountDistinct))))
}

func (c *distinctAcc) decode(d *decoder) {
	if d.Err != nil {
		return
	}
	p := c.h.Precision()
	d.Err = c.h.UnmarshalBinary(d.B)
	if d.Err == nil && c.h.Precision() != p {
		d.Err = fmt.Errorf("HLL precision %d, configured %d", c.h.Precision(), p)
	}
	d.B = nil
}

// percentAcc is a quantile sketch of numeric inputs.
type percentAcc struct {
	q        *sketch.Quantiles
	percents []float64
}

func (p *percentAcc) Add(in Input) error {
	if in.Value == nil {
		return nil
	}
	x, _, _, err := number(Percentiles, in.Value)
	if err != nil {
		return err
	}
	return p.q.Add(x)
}

func (p *percentAcc) Merge(o Accumulator) error {
	x, ok := o.(*percentAcc)
	if !ok {
		return mismatch(p, o)
	}
	return p.q.Merge(x.q)
}

// PercentName is the result key of percent p in a percentiles result.
func PercentName(p float64) string { return "p" + strconv.FormatFloat(p, 'f', -1, 64) }

func (p *percentAcc) Result() any {
	out := make(map[string]any, len(p.percents))
	for _, pc := range p.percents {
		v, err := p.q.Quantile(pc / 100)
		if err != nil {
			out[PercentName(pc)] = nil
			continue
		}
		out[PercentName(pc)] = v
	}
	return out
}

func (p *percentAcc) AppendBinary(dst []byte) ([]byte, error) {
	return p.q.AppendBinary(binary.AppendUvarint(dst, uint64(funcTag(Percentiles))))
}

func (p *percentAcc) decode(d *decoder) {
	if d.Err != nil {
		return
	}
	alpha := p.q.RelativeAccuracy()
	d.Err = p.q.UnmarshalBinary(d.B)
	if d.Err == nil && p.q.RelativeAccuracy() != alpha {
		d.Err = fmt.Errorf("quantile accuracy %v, configured %v", p.q.RelativeAccuracy(), alpha)
	}
	d.B = nil
}

// item is a kept value with its ordering fields.
type item struct {
	t    int64
	seq  uint64
	rank float64
	val  []byte
}

// before orders by event time, then arrival.
func (a item) before(b item) bool {
	if a.t != b.t {
		return a.t < b.t
	}
	return a.seq < b.seq
}

// pickAcc serves first and last.
type pickAcc struct {
	last bool
	has  bool
	it   item
}

func (p *pickAcc) fn() Func {
	if p.last {
		return Last
	}
	return First
}

func (p *pickAcc) Add(in Input) error {
	if in.Value == nil {
		return nil
	}
	b, err := encodeJSON(p.fn(), in.Value)
	if err != nil {
		return err
	}
	p.offer(item{t: in.Time, seq: in.Seq, val: b})
	return nil
}

func (p *pickAcc) offer(it item) {
	if !p.has || (p.last && p.it.before(it)) || (!p.last && it.before(p.it)) {
		p.it, p.has = it, true
	}
}

func (p *pickAcc) Merge(o Accumulator) error {
	x, ok := o.(*pickAcc)
	if !ok || x.last != p.last {
		return mismatch(p, o)
	}
	if x.has {
		p.offer(x.it)
	}
	return nil
}

func (p *pickAcc) Result() any {
	if !p.has {
		return nil
	}
	return decodeJSON(p.it.val)
}

func (p *pickAcc) AppendBinary(dst []byte) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(funcTag(p.fn())))
	if !p.has {
		return append(dst, 0), nil
	}
	return appendItem(append(dst, 1), p.it, false), nil
}

func (p *pickAcc) decode(d *decoder) {
	if d.Bool() {
		p.it, p.has = readItem(d, false), true
	}
}

// collectAcc serves collect (ordered by event time) and top_n (ordered by
// rank, descending). items are kept sorted and cut to n.
type collectAcc struct {
	n     int
	last  bool // collect: keep the latest
	top   bool // top_n
	items []item
}

func (c *collectAcc) fn() Func {
	if c.top {
		return TopN
	}
	return Collect
}

// less orders items by preference: kept items are a prefix.
func (c *collectAcc) less(a, b item) bool {
	switch {
	case c.top:
		if a.rank != b.rank {
			return a.rank > b.rank
		}
		return a.seq < b.seq
	case c.last:
		return b.before(a)
	default:
		return a.before(b)
	}
}

func (c *collectAcc) Add(in Input) error {
	if in.Value == nil {
		return nil
	}
	it := item{t: in.Time, seq: in.Seq}
	if c.top {
		if in.Rank == nil {
			return nil
		}
		r, _, _, err := number(TopN, in.Rank)
		if err != nil {
			return err
		}
		it.rank = r
	}
	b, err := encodeJSON(c.fn(), in.Value)
	if err != nil {
		return err
	}
	it.val = b
	c.insert(it)
	return nil
}

func (c *collectAcc) insert(it item) {
	i, _ := slices.BinarySearchFunc(c.items, it, func(a, b item) int {
		if c.less(a, b) {
			return -1
		}
		if c.less(b, a) {
			return 1
		}
		return 0
	})
	if i >= c.n {
		return
	}
	c.items = slices.Insert(c.items, i, it)
	if len(c.items) > c.n {
		c.items = c.items[:c.n]
	}
}

func (c *collectAcc) Merge(o Accumulator) error {
	x, ok := o.(*collectAcc)
	if !ok || x.top != c.top || x.last != c.last {
		return mismatch(c, o)
	}
	for _, it := range x.items {
		c.insert(it)
	}
	return nil
}

func (c *collectAcc) Result() any {
	out := make([]any, 0, len(c.items))
	if c.last {
		// Kept latest-first; reported in event-time order.
		for i := len(c.items) - 1; i >= 0; i-- {
			out = append(out, decodeJSON(c.items[i].val))
		}
		return out
	}
	for _, it := range c.items {
		out = append(out, decodeJSON(it.val))
	}
	return out
}

func (c *collectAcc) AppendBinary(dst []byte) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(funcTag(c.fn())))
	dst = binary.AppendUvarint(dst, uint64(len(c.items)))
	for _, it := range c.items {
		dst = appendItem(dst, it, c.top)
	}
	return dst, nil
}

func (c *collectAcc) decode(d *decoder) {
	n := d.Uvarint()
	if n > uint64(c.n) || n > uint64(len(d.B)) {
		d.Fail(fmt.Sprintf("%d items", n))
		return
	}
	for range n {
		it := readItem(d, c.top)
		if d.Err != nil {
			return
		}
		if len(c.items) > 0 && !c.less(c.items[len(c.items)-1], it) {
			d.Fail("items out of order")
			return
		}
		c.items = append(c.items, it)
	}
}

func appendItem(dst []byte, it item, ranked bool) []byte {
	dst = binary.AppendVarint(dst, it.t)
	dst = binary.AppendUvarint(dst, it.seq)
	if ranked {
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(it.rank))
	}
	dst = binary.AppendUvarint(dst, uint64(len(it.val)))
	return append(dst, it.val...)
}

// decoder reads accumulator encodings with a sticky error.
type decoder = binread.Reader

// readItem reads one kept value of first, last, collect or top_n.
func readItem(d *decoder, ranked bool) item {
	var it item
	it.t = d.Varint()
	it.seq = d.Uvarint()
	if ranked {
		it.rank = d.Float64()
	}
	n := d.Uvarint()
	if d.Err != nil || n > uint64(len(d.B)) {
		d.Fail("value length")
		return it
	}
	it.val = slices.Clone(d.B[:n])
	d.B = d.B[n:]
	if !json.Valid(it.val) {
		d.Fail("stored value")
	}
	return it
}
