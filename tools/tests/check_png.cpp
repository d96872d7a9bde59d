// check_png FILE [WIDTH HEIGHT]: exit code 0 when FILE decodes as an image (stb_image), of
// WIDTH × HEIGHT pixels when they are given; otherwise 1 with the reason on stderr.
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  if (argc != 2 && argc != 4) {
    std::fprintf(stderr, "usage: check_png FILE [WIDTH HEIGHT]\n");
    return 2;
  }
  int width = 0, height = 0, channels = 0;
  unsigned char* pixels = stbi_load(argv[1], &width, &height, &channels, 0);
  if (!pixels) {
    std::fprintf(stderr, "%s: not a decodable image: %s\n", argv[1], stbi_failure_reason());
    return 1;
  }
  stbi_image_free(pixels);
  std::printf("%s: %d x %d, %d channels\n", argv[1], width, height, channels);
  if (argc == 4 && (width != std::atoi(argv[2]) || height != std::atoi(argv[3]))) {
    std::fprintf(stderr, "%s: expected %s x %s\n", argv[1], argv[2], argv[3]);
    return 1;
  }
  return 0;
}
