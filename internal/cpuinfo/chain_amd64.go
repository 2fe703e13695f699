package cpuinfo

const haveChain = true

// chainAdds is the number of dependent additions per iteration of addChain.
const chainAdds = 16

// addChain runs n iterations of chainAdds dependent register additions (latency one
// cycle each on every x86-64 core; the loop counter runs beside the chain).
//
//go:noescape
func addChain(n int)
