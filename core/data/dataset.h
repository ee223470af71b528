#pragma once
// Labelled image sets. Every data set hands out decoded 8-bit images (OpenCV's BGR order for
// colour, one channel for gray) and an integer label (-1 when unknown); batching and
// preprocessing are the same code for all of them.

#include "data/preprocess.h"
#include "tensor/tensor.h"

#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cv {
class Mat;
}

namespace qe {

class Dataset {
public:
    virtual ~Dataset() = default;
    virtual std::size_t size() const = 0;
    virtual cv::Mat image(std::size_t index) const = 0;
    virtual int label(std::size_t index) const = 0;  // -1 when the data set has no labels
    // Human-readable name of the image for galleries and error messages (file name or "#123").
    virtual std::string imageName(std::size_t index) const = 0;
    virtual std::string description() const = 0;     // "Fashion-MNIST idx, 10000 images"
    // Class names where the data set knows them (Fashion-MNIST, CIFAR-10, labels files); may be empty.
    virtual std::vector<std::string> classNames() const { return {}; }
    bool hasLabels() const;
};

// Opens whatever `path` is:
//  - an idx3 image file (plain or .gz); labels from `labelsPath`, else the sibling idx1 file found
//    by the usual naming (t10k-images-idx3-ubyte[.gz] -> t10k-labels-idx1-ubyte[.gz]);
//  - a CIFAR-10 binary batch (.bin, records of 1 label byte + 3072 planar RGB bytes);
//  - a folder with one subfolder per class (sorted subfolder names are the classes);
//  - a flat folder of images, labelled by `labelsPath` or a labels.csv inside it (columns: a file
//    name column and a label column, header row required);
//    `labelColumn` names the CSV column to use when the file has several (e.g. "label_1001" for
//    models with a background class); empty picks "label", else the first column starting "label";
//  - a single PNG/JPEG/BMP file (label -1).
// Throws qe::Error naming the path and what was wrong.
std::unique_ptr<Dataset> openDataset(const std::filesystem::path& path,
                                     const std::optional<std::filesystem::path>& labelsPath = std::nullopt,
                                     const std::string& labelColumn = {});

// The label columns (names starting "label") of the labels CSV that `openDataset(path, labelsPath)`
// would read: `labelsPath`, else labels.csv in the folder `path`. Empty when the labels are not
// such a file.
std::vector<std::string> labelColumns(const std::filesystem::path& path,
                                      const std::optional<std::filesystem::path>& labelsPath = std::nullopt);

// The training split beside an evaluation file, for calibration: "t10k-images-idx3-ubyte.gz" ->
// "train-images-idx3-ubyte.gz" (MNIST's naming, which Fashion-MNIST shares); nullopt when the
// name does not follow it or the file is not there.
std::optional<std::filesystem::path> trainingSplitBeside(const std::filesystem::path& evaluationData);

// Images [first, first + count) of `whole` as a data set of their own, sharing its decoded images
// (nothing is read again): the mixed-precision search's held-out images at the end of the
// training split whose first images calibrate. Throws qe::Error when the range is empty or past the end.
std::shared_ptr<const Dataset> datasetSlice(std::shared_ptr<const Dataset> whole, std::size_t first, std::size_t count);

// Images [first, first+count) preprocessed into one float32 NCHW tensor [count, channels, height, width].
Tensor makeBatch(const Dataset& dataset, std::size_t first, std::size_t count, const Preprocess& preprocess,
                 int channels, int height, int width);

}  // namespace qe
