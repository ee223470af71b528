#pragma once
// The boundary between the program and its training module. Training runs on libtorch (PyTorch's
// C++ API), and merely loading libtorch costs about a second and 160 MB, so it lives in a module
// of its own (libquantexplorer_training.so, core/train/torch_*.cpp) that is loaded only when a
// user trains (training_module_loader.h). This header is all the two sides share: plain qe types,
// no libtorch.
//
// The program decides everything about quantization: which weights and activations are
// quantized, their parameters, the data. The module runs the graph in torch with fake quantizers
// where the program says (the straight-through estimator carries the gradient through them) and
// trains. Weight quantization calls back into the program (`quantizeWeights`), so that the
// weights are quantized by the very code the simulation uses, for every scheme; activations are
// uniform, with the parameters the program gives (static) or computes from each batch's range
// (dynamic).

#include "model/graph.h"
#include "tensor/tensor.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace qe {

// real = scale * (code - zeroPoint), code in [qmin, qmax].
struct UniformQuant {
    float scale = 1.f;
    std::int32_t zeroPoint = 0;
    std::int32_t qmin = 0, qmax = 255;
};

enum class TrainingOptimizer { Sgd, Adam };

struct TrainingJob {
    enum class Mode {
        Forward,  // run `forwardInput` through the graph (fake quantizers as set), into forwardOutput
        Train,
    };
    Mode mode = Mode::Train;
    const Graph* graph = nullptr;  // prepared (BatchNormalization folded), topological order

    // Float initializers that training changes (the weights and biases of the weighted layers).
    std::vector<std::string> trainable;
    // Initializers passed through quantizeWeights on every forward pass (values -> fake-quantized
    // values of the same shape).
    std::set<std::string> quantizedWeights;
    std::function<Tensor(const std::string& initializer, const Tensor& values)> quantizeWeights;
    // Biases quantized as the integer engine stores them (int32 at input scale x weight scale),
    // by initializer, with their layer's weight initializer: quantizeBias(bias, its values, the
    // float weights' values) gives the dequantized values.
    std::map<std::string, std::string> quantizedBiases;
    std::function<Tensor(const std::string& bias, const Tensor& values, const Tensor& weights)> quantizeBias;
    // The program's own state for quantizeBias (each bias's input scale, 0 where it stays float);
    // the module never reads it.
    std::map<std::string, float> biasInputScales;
    // Tensors fake-quantized where they are made (a graph input, or the output of the node that
    // makes them). Static: these parameters (the program updates them at checkpoints). Dynamic:
    // the parameters for each batch's [min, max], from dynamicQuant.
    std::map<std::string, UniformQuant> staticActivations;
    std::set<std::string> dynamicActivations;
    std::function<UniformQuant(const std::string& tensor, float min, float max)> dynamicQuant;
    // Static quantizers whose step size training learns (LSQ, Esser et al. 2020): each starts from
    // its staticActivations entry and is trained with the weights from then on (the program's later
    // updates of that entry are ignored); its zero-point and code range stay.
    std::set<std::string> learnedActivations;
    // Weights whose step sizes training learns (LSQ), symmetric with min-max ranges: per channel
    // along `channelAxis` or one step for the tensor, codes -qmax..qmax. A learned step never
    // exceeds the weights' own min-max step (a larger one only coarsens the grid), and the weights
    // handed back are clipped to +-step * qmax, so that the min-max rule finds the learned step
    // again in the saved model. These bypass quantizeWeights.
    struct LearnedWeights {
        int qmax = 127;
        bool perChannel = true;
        int channelAxis = 0;
    };
    std::map<std::string, LearnedWeights> learnedWeights;
    // Convolutions with a BatchNormalization folded into them (its beta and |gamma| as `mean` and
    // `stddev`, ChannelStatistics). For the first `batchNormEpochs` epochs training unfolds it:
    // each batch's output is normalized with the batch's own statistics and the running ones are
    // updated (momentum 0.1, as PyTorch), the weights quantized being those folded with the
    // running statistics (Krishnamoorthi 2018, section 3.2); then the statistics freeze and the
    // normalization is folded back into the weights, which train on alone.
    struct FoldedBatchNorm {
        std::string node, weight, bias;
        std::vector<float> mean, stddev;
    };
    std::vector<FoldedBatchNorm> batchNorms;
    int batchNormEpochs = 1;

    // Forward mode.
    const Tensor* forwardInput = nullptr;
    Tensor forwardOutput;

    // Train mode. `images` [N, C, H, W] preprocessed; `labels` one per image, or empty: then the
    // float model's outputs are the targets (distillation at temperature 1).
    const Tensor* images = nullptr;
    std::vector<int> labels;
    int epochs = 1;
    int steps = 0;  // > 0: stop after this many steps (the schedule spans them)
    int batchSize = 64;
    TrainingOptimizer optimizer = TrainingOptimizer::Adam;
    double learningRate = 1e-4;
    double momentum = 0.9;  // SGD
    double weightDecay = 0;
    bool cosineSchedule = true;  // else constant
    std::uint64_t seed = 1;
    int threads = 2;
    int checkpointEvery = 0;  // steps between checkpoints besides each epoch's end; 0: epochs only

    // Called after every step with its mean loss over the batch.
    std::function<void(int step, int totalSteps, int epoch, double loss)> onStep;
    // Called at each checkpoint with the current weights (of `trainable`) and the mean loss since
    // the previous one. The program measures them and may update staticActivations; false stops
    // training there (`stopped`).
    // `learned`: the learnedActivations' quantizers of the moment.
    std::function<bool(int step, int epoch, const std::map<std::string, Tensor>& weights,
                       const std::map<std::string, UniformQuant>& learned, double meanLoss)>
        checkpoint;
    const std::atomic<bool>* cancel = nullptr;

    // Results. `trained`: the weights after the last step, or after the last step whose loss was
    // finite when the loss diverged (then `diverged`, and training stopped there).
    std::map<std::string, Tensor> trained;
    std::map<std::string, UniformQuant> learned;  // the learnedActivations' quantizers, as `trained`
    int stepsDone = 0;
    bool diverged = false;
    bool cancelled = false;
    bool stopped = false;
    std::string error;  // set instead of throwing across the module boundary
};

// The module's one entry point, extern "C" under this name.
using TrainingEntry = void (*)(TrainingJob& job);
inline constexpr const char* kTrainingEntryName = "qe_run_training_job";

}  // namespace qe
