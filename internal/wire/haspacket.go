package wire

// HasPacket reports whether a whole packet (or a framing error) is already
// buffered, so that the next call to Next returns without reading. Callers
// use it to flush batched work before Next would block.
func (r *Reader) HasPacket() bool {
	if r.err != nil {
		return true
	}
	b := r.buf[r.r:r.w]
	if len(b) == 0 {
		return false
	}
	if b[0]>>4 != 6 {
		return true
	}
	if len(b) < HeaderLen {
		return false
	}
	return len(b) >= HeaderLen+(int(b[4])<<8|int(b[5]))
}
