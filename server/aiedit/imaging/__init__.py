"""Pure image code: decoding, encoding, masks, regions, tiles. No torch, no HTTP."""
