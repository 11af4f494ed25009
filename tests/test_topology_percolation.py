"""Percolation (chain removal) on hand-built chains: exactly the dead links go."""

import pytest
import torch

from sparse_convert.topology import percolate


def m(rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_a_hidden_neuron_without_outgoing_links_loses_its_incoming_ones_in_cascade():
    # 3 inputs → 3 hidden → 3 hidden → 2 outputs (to the dense classifier).
    first = m([[1, 1, 0],
               [0, 1, 1],
               [1, 0, 1]])
    second = m([[1, 0, 0],
                [1, 0, 0],
                [0, 1, 0]])     # hidden-1 neuron 2 feeds nothing: its row in `first` goes
    third = m([[1, 0, 0],
               [1, 0, 0]])      # hidden-2 neuron 1 and 2 feed nothing: rows 1, 2 of `second` go,
    # so hidden-1 neuron 1 (it only fed hidden-2 neuron 2) loses its incoming links too.
    got = percolate([first, second, third])
    assert torch.equal(got[0], m([[1, 1, 0], [0, 0, 0], [0, 0, 0]]))
    assert torch.equal(got[1], m([[1, 0, 0], [0, 0, 0], [0, 0, 0]]))
    assert torch.equal(got[2], third)


def test_a_hidden_neuron_without_incoming_links_loses_its_outgoing_ones_in_cascade():
    first = m([[1, 1],
               [0, 0]])          # hidden-1 neuron 1 receives nothing
    second = m([[1, 0],
                [0, 1]])         # ... so its link to hidden-2 neuron 1 goes, which then receives nothing
    third = m([[1, 1],
               [1, 1]])          # ... so hidden-2 neuron 1's links into the last layer go too
    got = percolate([first, second, third])
    assert torch.equal(got[0], first)
    assert torch.equal(got[1], m([[1, 0], [0, 0]]))
    assert torch.equal(got[2], m([[1, 0], [1, 0]]))


def test_network_inputs_and_chain_outputs_are_never_pruned():
    first = m([[1, 0, 0]])       # inputs 1, 2 have no links: nothing to do with them
    last = m([[1], [0]])         # output 1 of the chain has no incoming link but feeds the classifier
    assert [torch.equal(a, b) for a, b in zip(percolate([first, last]), [first, last])] == [True, True]


def test_a_live_chain_is_unchanged_and_inputs_are_not_modified():
    a, b = torch.ones(4, 3, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)
    b[:, 1] = False
    before = b.clone()
    got = percolate([a, b])
    assert torch.equal(b, before)
    assert not got[0][1].any() and int(got[0].sum()) == 9


def test_conv_channels_and_a_flattened_classifier_input_percolate_by_channel():
    conv1 = torch.ones(2, 1, 3, 3, dtype=torch.bool)
    conv2 = torch.ones(3, 2, 3, 3, dtype=torch.bool)
    conv2[:, 1] = False                 # channel 1 of conv1 feeds nothing → conv1 channel 1 emptied
    conv2[2] = False                    # channel 2 of conv2 receives nothing → its 4 flattened features go
    fc = torch.ones(5, 3 * 4, dtype=torch.bool)  # 3 channels x 2 x 2 pixels, flattened
    got = percolate([conv1, conv2, fc])
    assert not got[0][1].any() and got[0][0].all()
    assert torch.equal(got[1], conv2)
    assert not got[2][:, 8:].any() and got[2][:, :8].all()


def test_grouped_conv_inputs_map_to_their_group():
    conv = torch.ones(4, 1, 1, 1, dtype=torch.bool)      # 4 channels
    depthwise = torch.ones(4, 1, 3, 3, dtype=torch.bool)  # groups = 4: channel c → output c
    depthwise[2] = False
    got = percolate([conv, depthwise], groups=[1, 4])
    assert got[0][:, 0, 0, 0].tolist() == [True, True, False, True]


def test_mismatched_layers_break_the_chain():
    a = torch.zeros(3, 4, dtype=torch.bool)
    b = torch.ones(2, 5, dtype=torch.bool)  # 5 inputs cannot be a's 3 outputs
    got = percolate([a, b])
    assert torch.equal(got[1], b)
    with pytest.raises(ValueError, match="2 group counts for 1 masks"):
        percolate([a], groups=[1, 1])


def test_a_vit_percolates_only_inside_each_mlp_and_cht_keeps_every_layers_density():
    from sparse_convert.models import build_model
    from sparse_convert.topology import build_topology, get_mask, masked_layers, percolation_chains

    torch.manual_seed(0)
    vit = build_model("vit_tiny", 10, (1, 8, 8))
    sched = build_topology("cht", vit, None, 0.9, total_steps=4, update_interval=1, seed=0)
    names = list(sched.layers())
    assert percolation_chains(vit, names) == [["blocks.0.mlp.fc1", "blocks.0.mlp.fc2"],
                                              ["blocks.1.mlp.fc1", "blocks.1.mlp.fc2"]]
    assert percolation_chains(torch.nn.Sequential(), ["0", "2"]) == [["0", "2"]]  # no declaration: one chain
    links = {n: int(get_mask(m).sum()) for n, m in masked_layers(vit).items()}
    sched.step()
    (update,) = sched.history
    for name in names:
        if "mlp" not in name:  # qkv and proj sit between residual sums: never percolated
            assert update["layers"][name]["percolated"] == 0, name
    assert {n: int(get_mask(m).sum()) for n, m in masked_layers(vit).items()} == links
