// Package tensorboard writes scalars to TensorBoard event files: Event
// protocol buffers (TensorBoard's compat/proto/event.proto and summary.proto)
// framed as TFRecords, as "TFRecord format details" in
// https://www.tensorflow.org/tutorials/load_data/tfrecord describes them.
//
// A run writes into RUNDIR/tb with one [Writer], and the user watches it with
//
//	tensorboard --logdir RUNDIR/tb
//
// Each Writer makes a new file, so a resumed run adds to the curves without
// touching the files written before. Steps written again after a resume (those
// between the last checkpoint and a crash) show twice, once from each file.
package tensorboard
