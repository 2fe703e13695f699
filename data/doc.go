// Package data reads PASCAL VOC-style segmentation datasets and image-folder
// classification datasets and streams them as normalised float32 NCHW batches.
//
// # Datasets
//
// A Dataset lists samples and loads one on demand (Load is safe for concurrent
// use). OpenVOC reads ROOT/JPEGImages/<id>.jpg, ROOT/<mask dir>/<id>.png and
// ROOT/ImageSets/Segmentation/<split>.txt, where ROOT may be VOC2012 itself,
// VOCdevkit or the folder holding VOCdevkit; OpenFolder reads
// ROOT/{train,val}/<class>/*.{jpg,jpeg,png} (following symbolic links; a class
// without images is listed by Folder.EmptyClasses). Subset and Exclude derive
// datasets (Exclude with Report.BadIDs skips bad samples). Sample ids and class
// names are escaped by EscapeName (invalid UTF-8 bytes as \xNN), so they survive
// JSON unchanged; sample paths keep the raw file names.
//
// Images are JPEG or PNG, decoded to opaque RGB (*image.RGBA): grayscale, CMYK,
// palette and 16-bit images are converted and alpha is dropped. Masks are PNGs
// whose values are class indices: a palette PNG gives its palette indices, an
// 8-bit grayscale PNG (SegmentationClassAug) its values. RGB colour masks are
// refused, never mapped back from colours: the class indices are the palette
// indices, and the error says how to convert. Every value must be below the class
// count or be 255 (label.Ignore). Headers are checked before decoding; more than
// MaxPixels is refused. VOCColor, VOCPalette and EncodeMask give the VOC
// colormap; label.VOCClasses gives the class names.
//
// # Transforms
//
// A Transform turns an example into network input, normalised as
// (pixel/255 - Mean)/Std (ImageNet's by default), so padding with the mean is 0.
// Segmentation training, by Augment level: full = random scale in [0.5, 2]
// (approximate bilinear image, nearest mask), pad to the crop (mask 255), random
// crop, random horizontal flip; flip = the image at its own scale centred in the
// crop window (padded or centre-cropped), then a random flip; none = the same
// without the flip. Segmentation evaluation takes the whole image at its own
// resolution, padded bottom/right (labels 255) to the batch's largest H and W
// rounded up to Stride. Classification training: random resized crop and flip
// (full), or the evaluation transform plus a flip (flip) or not (none);
// classification evaluation: resize the shorter side to Resize, centre crop.
//
// # Loader
//
// A Loader's Epoch(ctx, epoch, startStep) is an iter.Seq2[*Batch, error].
// Workers goroutines load and transform samples, at most Prefetch batches ahead,
// into preallocated buffers, and batches come out in order. The order is a
// permutation seeded by (Seed, epoch) and each sample's randomness is seeded by
// (Seed, epoch, sample index) with a counter-based generator, so batches are
// bit-identical for any number of workers and an epoch resumes exactly at any
// step. Iteration ends with the epoch, when the loop breaks, or when ctx is done;
// no goroutine outlives it. Batches are reused: copy what must outlive the loop
// body.
//
// # Checking and demo data
//
// Check reads every sample and reports every problem with its file, plus the
// image size range and pixels (or images) per class. WriteDemo writes a small,
// deterministic, learnable VOC-layout dataset of coloured shapes, and EnsureDemo
// reuses a complete one.
//
// # Errors
//
// Errors start with "data: ". A bad file is a *SampleError naming it; errors.Is
// tells the problem: ErrFormat, ErrCorrupt, ErrTooLarge, ErrMaskValue,
// ErrSizeMismatch, or fs.ErrNotExist.
package data
