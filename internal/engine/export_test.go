package engine

// WithFullDecode makes a stage decode every value in full, as it did
// before decoding only the fields a stage reads; the differential tests
// compare the two.
func WithFullDecode() StageOption { return func(s *Stage) { s.fullDecode = true } }

// DecodesFields returns the fields the stage decodes (empty when it reads
// none), or nil when it decodes whole values.
func (s *Stage) DecodesFields() []string {
	if s.fields == nil {
		return nil
	}
	return append([]string{}, s.fields.Names()...)
}

// RunsCompiled reports whether the stage runs its messages compiled (see
// compiledStage) before it falls back to records.
func (s *Stage) RunsCompiled() bool { return s.compiled != nil }

// WithoutScratch makes a stage decode every message into a record of its
// own, as a stage with a step that is not transient does; the
// differential tests compare the two.
func WithoutScratch() StageOption { return func(s *Stage) { s.noScratch = true } }

// ReusesScratch reports whether the stage decodes messages into its
// scratch record (every step is transient).
func (s *Stage) ReusesScratch() bool { return s.transient }
