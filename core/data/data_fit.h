#pragma once
// Whether a data set fits a model: a model evaluated on images it was not made for gives a
// number (ResNet-8 for CIFAR-10 on Fashion-MNIST shows "top-1 10.80%") that means nothing, so
// every misfit is said in words. The CLI prints these on stderr and the window shows them above
// its summary line; both get them from Study::dataWarnings(), which calls this.

#include "data/dataset.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qe {

// What the model takes and gives, for the check.
struct ModelInputOutput {
    int channels = 0, height = 0, width = 0;  // of the image input; 0 when unknown
    std::int64_t outputs = 0;                 // classes the model scores; 0 when unknown
};

// One sentence per misfit, checked on the first `images` images (0: all) of `data`:
//  - colour channels: gray images for a colour model, or colour images for a gray one;
//  - image size: images smaller than the model's input (they are enlarged);
//  - labels against outputs: a label the model cannot output, a data set with far fewer classes
//    than outputs (CIFAR-10's 10 against ImageNet's 1001), or a labels column named for another
//    class count ("label_1000" for a model with 1001 outputs).
// Empty when everything fits.
std::vector<std::string> dataFitWarnings(const Dataset& data, std::size_t images, const ModelInputOutput& model,
                                         const std::string& labelColumn = {});

}  // namespace qe
