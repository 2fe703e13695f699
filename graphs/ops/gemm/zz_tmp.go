package gemm

var noFuse = false
