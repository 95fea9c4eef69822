export async function main(argv: string[]): Promise<number> {
  console.log(argv.join(' '));
  return 0;
}
