package train

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vggo/vggo/data"
	"github.com/vggo/vggo/graphs"
)

// openLoaders makes the training loader (this rank's shard of every global batch) and
// the validation loader (this rank's share of the images).
func (t *Trainer) openLoaders(trainDS, valDS data.Dataset, info graphs.ArchInfo) error {
	cfg, s := &t.cfg, &t.step
	ranks := t.comm.Size()
	s.accum = max(cfg.Accum, 1)
	if cfg.Batch%(ranks*s.accum) != 0 {
		return fmt.Errorf("train: --batch %d does not split into %d equal micro-batches (%d ranks x --accum %d): use a multiple of %d", cfg.Batch, ranks*s.accum, ranks, s.accum, ranks*s.accum)
	}
	s.micro = cfg.Batch / (ranks * s.accum)
	aug, _ := data.ParseAugment(cfg.Data.Augment)
	var err error
	t.data.train, err = data.NewLoader(trainDS,
		data.Transform{Train: true, Augment: aug, CropH: cfg.CropH, CropW: cfg.CropW},
		data.Config{BatchSize: cfg.Batch, Workers: cfg.Data.Workers, Seed: cfg.Seed, Shuffle: true, DropLast: true,
			Shard: t.comm.Rank(), Shards: ranks})
	if err != nil {
		return err
	}
	if t.data.steps = t.data.train.StepsPerEpoch(); t.data.steps == 0 {
		return fmt.Errorf("train: the %s split has %d samples, fewer than one batch of %d", cfg.Data.TrainSplit, trainDS.Len(), cfg.Batch)
	}
	t.data.hasVal = valDS != nil
	if valDS != nil && ranks > 1 { // each rank scores every ranks-th image
		var mine []int
		for i := t.comm.Rank(); i < valDS.Len(); i += ranks {
			mine = append(mine, i)
		}
		valDS = data.Subset(valDS, mine)
	}
	if valDS == nil || valDS.Len() == 0 {
		return nil
	}
	t.data.val, err = data.NewLoader(valDS,
		data.Transform{Stride: info.Stride, CropH: cfg.CropH, CropW: cfg.CropW},
		data.Config{BatchSize: cfg.EvalBatch, Workers: cfg.Data.Workers, Seed: cfg.Seed})
	return err
}

// Expected dataset layouts, added to the error when a dataset cannot be opened.
const (
	vocLayout = `expected a PASCAL VOC layout:
	ROOT/JPEGImages/<id>.jpg
	ROOT/SegmentationClass/<id>.png   (8-bit palette PNG, pixel value = class index, 255 = ignore)
	ROOT/ImageSets/Segmentation/{train,val,trainval}.txt
with ROOT the VOC2012 folder, VOCdevkit, or the folder holding VOCdevkit`
	folderLayout = `expected an image-folder layout:
	ROOT/train/<class>/*.{jpg,jpeg,png}
	ROOT/val/<class>/*.{jpg,jpeg,png}`
)

// OpenDataset opens one split of the dataset d describes (classes: the VOC class
// count, 0 for the default). When the files are missing, the error shows the expected
// layout.
func OpenDataset(d DataConfig, split string, classes int) (ds data.Dataset, err error) {
	layout := vocLayout
	switch d.Kind {
	case "voc":
		ds, err = data.OpenVOC(d.Root, split, data.VOCOptions{MaskDir: d.MaskDir, Classes: classes})
	case "folder":
		layout = folderLayout
		ds, err = data.OpenFolderClasses(d.Root, split, d.Classes)
	default:
		return nil, fmt.Errorf("train: unknown dataset kind %q (valid: voc, folder)", d.Kind)
	}
	if err != nil && errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w\n%s", err, layout)
	}
	return ds, err
}

// OpenData opens the training split (less the excluded samples) and the validation
// split (nil when there is none). Warnings (an image-folder class without images) go to
// log.
func OpenData(d DataConfig, classes int, log io.Writer) (train, val data.Dataset, err error) {
	if train, err = OpenDataset(d, d.TrainSplit, classes); err != nil {
		return nil, nil, err
	}
	warnEmpty(log, train, d.Root, d.TrainSplit)
	if len(d.Exclude) > 0 {
		train = data.Exclude(train, d.Exclude)
	}
	if d.ValSplit != "" {
		if val, err = OpenDataset(d, d.ValSplit, classes); err != nil {
			return nil, nil, err
		}
		warnEmpty(log, val, d.Root, d.ValSplit)
	}
	return train, val, nil
}

func warnEmpty(log io.Writer, ds data.Dataset, root, split string) {
	if f, ok := ds.(*data.Folder); ok {
		for _, c := range f.EmptyClasses() {
			fmt.Fprintf(log, "warning: class %s has no image in %s\n", c, filepath.Join(root, split, c))
		}
	}
}
