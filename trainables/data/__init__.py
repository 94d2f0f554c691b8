"""The data rooms: readers of each data set (COCO, VOC, VG500, CSV), the registry of data sets, the embedded
synthetic set, images and the backbone's preprocessing. Imports nothing of trainables but `backbones`."""
