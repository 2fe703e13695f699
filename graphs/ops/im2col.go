package ops

// validOW returns the range [lo, hi) of output columns ow whose input column
// ow·sw - padLeft + j lies inside [0, W) for kernel column j.
func (g *convGeom) validOW(j int) (lo, hi int) {
	off := g.pad.Left - j // iw = ow·sw - off
	if off > 0 {
		lo = (off + g.sw - 1) / g.sw
	}
	last := g.w - 1 + off // iw ≤ W-1  ⇔  ow·sw ≤ last
	if last < 0 {
		return 0, 0
	}
	hi = min(last/g.sw+1, g.wo)
	if lo > hi {
		lo = hi
	}
	return lo, hi
}

// im2col writes the receptive fields of the output positions [p0, p1) (row-major over
// Ho×Wo) of one image x (Cin×H×W) into col, a (Cin·kH·kW) × (p1-p0) row-major matrix:
//
//	col[(c·kH+i)·kW+j][p-p0] = x[c][oh·sH - top + i][ow·sW - left + j]   (0 outside x)
//
// where p = oh·Wo + ow. Every element of col[:Cin·kH·kW·(p1-p0)] is written.
func (g *convGeom) im2col(x []float32, p0, p1 int, col []float32) {
	g.colWalk(x, 0, g.cin, p0, p1, col, false)
}

// col2im is the adjoint of im2col restricted to the channels [c0, c1): it adds each
// element of col, a ((c1-c0)·kH·kW) × (p1-p0) row-major matrix, into the input pixel
// of dx (Cin×H×W) it was read from. Padding positions are dropped.
func (g *convGeom) col2im(col []float32, c0, c1, p0, p1 int, dx []float32) {
	g.colWalk(dx, c0, c1, p0, p1, col, true)
}

// colWalk pairs each element of col (channels [c0, c1), positions [p0, p1)) with the
// pixel of x it stands for: it copies x into col (im2col, zeros for padding) or, when
// adjoint, adds col into x (col2im, padding dropped).
func (g *convGeom) colWalk(x []float32, c0, c1, p0, p1 int, col []float32, adjoint bool) {
	n := p1 - p0
	plane := g.h * g.w
	r := 0
	for c := c0; c < c1; c++ {
		xc := x[c*plane : (c+1)*plane]
		for i := 0; i < g.kh; i++ {
			for j := 0; j < g.kw; j++ {
				lo, hi := g.validOW(j)
				cr := col[r*n : (r+1)*n]
				r++
				for p := p0; p < p1; {
					oh := p / g.wo
					ow0 := p - oh*g.wo
					ow1 := min(g.wo, ow0+p1-p)
					seg := cr[p-p0 : p-p0+ow1-ow0]
					p += ow1 - ow0
					ih := oh*g.sh - g.pad.Top + i
					a, b := max(ow0, lo), min(ow1, hi)
					if ih < 0 || ih >= g.h || a >= b {
						if !adjoint {
							clear(seg)
						}
						continue
					}
					row := xc[ih*g.w : (ih+1)*g.w]
					iw := a*g.sw - g.pad.Left + j
					s := seg[a-ow0 : b-ow0]
					if adjoint {
						if g.sw == 1 {
							d := row[iw : iw+len(s)]
							for t, v := range s {
								d[t] += v
							}
							continue
						}
						for t, v := range s {
							row[iw+t*g.sw] += v
						}
						continue
					}
					clear(seg[:a-ow0])
					clear(seg[b-ow0:])
					if g.sw == 1 {
						copy(s, row[iw:iw+len(s)])
						continue
					}
					for t := range s {
						s[t] = row[iw+t*g.sw]
					}
				}
			}
		}
	}
}
